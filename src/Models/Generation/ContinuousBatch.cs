using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Generation;

public sealed partial class TextGenerator
{
    /// <summary>Prompt tokens prefilled in one forward at most when sequences join (bounds the prefill's activations).</summary>
    internal const long PrefillTokenBudget = 16_384;

    /// <summary>
    /// One continuous-batching run (<see cref="Generate(IReadOnlyList{GenerationRequest}, GenerationOptions, int, Action{int, GenerationResult}?, CancellationToken)"/>).
    /// The KV cache holds <c>rows</c> sequences at a shared write position (its length): every decoding step writes one
    /// token per row there. A row's tokens sit contiguously in the cache, from its start to the write position; before a
    /// row's start lies whatever an earlier occupant of the slot left, masked out by the attention mask. A joining
    /// prompt is prefilled on its own cache and copied in so that it ends at the write position; when the write position
    /// reaches the capacity, every live row's tokens move to the front (one copy), which frees the positions finished
    /// occupants used. Positions (RoPE) count each row's real tokens, so moving cache entries changes nothing.
    /// The host reads the generated tokens every step (every <see cref="CudaReadEvery"/> on CUDA) from a small ring
    /// buffer; finished sequences are seen, reported and replaced there.
    /// </summary>
    private sealed class ContinuousBatch : IDisposable
    {
        private readonly CausalLM _model;
        private readonly int _padTokenId;
        private readonly Func<IReadOnlyList<int>, string>? _decode;
        private readonly IReadOnlyList<GenerationRequest> _requests;
        private readonly GenerationOptions _options;
        private readonly HashSet<int> _eos;
        private readonly Action<int, GenerationResult>? _onFinished;
        private readonly int _maxNew;
        private readonly long _capacity;
        private readonly int _readEvery;
        private readonly bool _masked;
        private readonly int _joinAtOnce;
        private readonly Device _device;
        private readonly GenerationCounters _counters;

        // Per request (host).
        private readonly Queue<int> _waiting;
        private readonly List<int>[] _ids;
        private readonly List<float>[] _logprobs;
        private readonly GenerationResult?[] _results;

        // Per cache row (host): the request in it (−1: none yet), where its first real token sits in the cache, tokens
        // generated so far by count of steps (known without reading them), and whether its sequence has ended.
        private int[] _slotRequest;
        private long[] _slotStart;
        private int[] _slotSteps;
        private bool[] _slotDone;

        // Per cache row (device); every tensor here is owned by this object.
        private readonly KvCache _cache;
        private readonly InferenceWeights? _fused;
        private readonly InferenceWeights? _ownFused;
        // [rows, 1, 1, capacity] in the model's dtype: 0 where a row's next query may see a cached key, the lowest value
        // where not (another occupant's positions, or positions not written yet); updated in place each step, not rebuilt.
        private Tensor _maskFull;
        private Tensor? _maskSliding; // the same, also hiding keys that left the sliding window (models with one)
        private readonly int? _window;
        private readonly double _hidden;
        private Tensor _nextPosition; // [rows, 1] int64: the position of the token fed next
        private Tensor _current;     // [rows, 1] int64: the token fed next (sampled, not yet in the cache)
        private Tensor _step;        // [rows, 1] int64: index of the next uniform draw of the row's request
        private Tensor? _uniforms;   // [rows, maxNew] float32: the row's request's draws, one per new token (sampling only)
        private Tensor _ringTokens;  // [rows, readEvery] int64: tokens sampled since the last host read
        private Tensor _ringLogprobs; // [rows, readEvery] float32
        private int _ringCount;

        public ContinuousBatch(TextGenerator owner, IReadOnlyList<GenerationRequest> requests, GenerationOptions options, HashSet<int> eos,
            int rows, Action<int, GenerationResult>? onFinished)
        {
            _model = owner._model;
            _padTokenId = owner._padTokenId;
            _decode = owner._decodeText;
            _requests = requests;
            _options = options;
            _eos = eos;
            _onFinished = onFinished;
            _maxNew = options.MaxNewTokens;
            _device = _model.Device;
            _counters = owner.Counters;
            int longest = requests.Max(r => r.PromptIds.Count);
            // A row needs at most longest + maxNew − 1 positions; slack beyond that lets rows join for maxNew steps
            // between moves of the window (kept within the model's context, which some rope types check).
            long needed = longest + _maxNew;
            long slack = requests.Count > rows ? Math.Clamp(_model.Config.MaxPositionEmbeddings - needed, 0, _maxNew) : 0;
            _capacity = needed + slack;
            _readEvery = options.StopStrings.Count > 0 || _device.type != DeviceType.CUDA ? 1 : CudaReadEvery;
            // Rows of one prompt length that all start together never need a padding mask (causal prefill; each new
            // token sees the whole cache), which keeps SDPA on its unmasked path.
            _masked = requests.Count > rows || requests.Any(r => r.PromptIds.Count != longest);
            _joinAtOnce = Math.Max(1, rows / 8);

            // Longest prompts first: a joining prompt is then never longer than the cache's current window.
            _waiting = new Queue<int>(Enumerable.Range(0, requests.Count).OrderByDescending(i => requests[i].PromptIds.Count).ThenBy(i => i));
            _ids = requests.Select(_ => new List<int>(_maxNew)).ToArray();
            _logprobs = requests.Select(_ => new List<float>(_maxNew)).ToArray();
            _results = new GenerationResult?[requests.Count];
            _slotRequest = Enumerable.Repeat(-1, rows).ToArray();
            _slotStart = new long[rows];
            _slotSteps = new int[rows];
            _slotDone = new bool[rows];

            _cache = new KvCache(_model.Config, rows, _capacity, _model.DType, _device);
            _ownFused = owner.Fused is null && owner.FuseProjections ? _model.FuseProjections() : null;
            _fused = owner.Fused ?? _ownFused;
            _window = _model.Config.SlidingWindow;
            _hidden = CausalLM.MaskedValue(_model.DType);
            _maskFull = full(new long[] { rows, 1, 1, _capacity }, _hidden, _model.DType, _device).DetachFromDisposeScope();
            _maskSliding = _window is null ? null : full(new long[] { rows, 1, 1, _capacity }, _hidden, _model.DType, _device).DetachFromDisposeScope();
            _nextPosition = zeros(new long[] { rows, 1 }, int64, _device).DetachFromDisposeScope();
            _current = full(new long[] { rows, 1 }, _padTokenId, int64, _device).DetachFromDisposeScope();
            _step = zeros(new long[] { rows, 1 }, int64, _device).DetachFromDisposeScope();
            _uniforms = options.Greedy ? null : zeros(new long[] { rows, _maxNew }, float32, _device).DetachFromDisposeScope();
            _ringTokens = zeros(new long[] { rows, _readEvery }, int64, _device).DetachFromDisposeScope();
            _ringLogprobs = zeros(new long[] { rows, _readEvery }, float32, _device).DetachFromDisposeScope();
        }

        private int Rows => _slotRequest.Length;

        private bool Live(int row) => _slotRequest[row] >= 0 && !_slotDone[row];

        private bool NeedsStep(int row) => Live(row) && _slotSteps[row] < _maxNew;

        public GenerationResult[] Run(CancellationToken cancellationToken)
        {
            using var noGrad = no_grad();
            Refill();
            while (Enumerable.Range(0, Rows).Any(NeedsStep))
            {
                cancellationToken.ThrowIfCancellationRequested();
                Step();
                if (_ringCount == _readEvery || !Enumerable.Range(0, Rows).Any(NeedsStep))
                {
                    Read();
                    Refill();
                }
            }
            return _results.Select(r => r ?? throw new InvalidOperationException("a request ended without a result")).ToArray();
        }

        /// <summary>One decoding step for every row: feed each row's current token, sample the next.</summary>
        private void Step()
        {
            if (_cache.Length == _capacity)
            {
                MoveWindow(0);
                if (_cache.Length == _capacity) throw new InvalidOperationException($"generation: the KV cache of {_capacity} positions is full with live rows");
            }
            using var scope = NewDisposeScope();
            long seen = _cache.Length + 1;
            AdditiveMasks? masks = null;
            if (_masked)
            {
                // The key written this step becomes visible to every row; with a window, the one that leaves it is hidden.
                long len = _cache.Length;
                _maskFull.narrow(3, len, 1).fill_(0);
                if (_maskSliding is not null)
                {
                    _maskSliding.narrow(3, len, 1).fill_(0);
                    if (len - _window!.Value >= 0) _maskSliding.narrow(3, len - _window.Value, 1).fill_(_hidden);
                }
                masks = new AdditiveMasks(_maskFull.narrow(3, 0, seen), _maskSliding?.narrow(3, 0, seen));
            }
            var hidden = _model.Hidden(new CausalLMInput(_current, null, _masked ? _nextPosition : null, _cache, _fused, masks)); // [rows, 1, h]
            var chosen = Choose(_model.Head(hidden).squeeze(1), _uniforms is null ? null : _uniforms.gather(1, _step.clamp_max(_maxNew - 1)), out var chosenLogp); // [rows, 1] each
            _ringTokens.narrow(1, _ringCount, 1).copy_(chosen);
            _ringLogprobs.narrow(1, _ringCount, 1).copy_(chosenLogp);
            _current.copy_(chosen);
            _nextPosition.add_(1);
            _step.add_(1);
            _ringCount++;
            _counters.AddStep(Rows);
            for (int row = 0; row < Rows; row++)
                if (Live(row)) _slotSteps[row]++;
        }

        /// <summary>The next token of each row and its log-prob (temperature 1, unfiltered), each [rows, 1].</summary>
        /// <param name="logits">[rows, vocab]</param>
        /// <param name="uniform">Each row's draw for this token, [rows, 1] float32; null when greedy.</param>
        /// <param name="logprob">[rows, 1] float32.</param>
        private Tensor Choose(Tensor logits, Tensor? uniform, out Tensor logprob)
        {
            if (logits.dtype != float32) logits = logits.to(float32);
            var chosen = uniform is null ? logits.argmax(-1, keepdim: true) : Sample(logits, _options, uniform).unsqueeze(1); // [rows, 1] int64
            logprob = logits.log_softmax(-1).gather(1, chosen);                                                            // [rows, 1] float32
            return chosen;
        }

        /// <summary>Hands the tokens sampled since the last read to their requests; sequences that end are reported.</summary>
        private void Read()
        {
            if (_ringCount == 0) return;
            using var scope = NewDisposeScope();
            int count = _ringCount;
            long[] tokens = _ringTokens.narrow(1, 0, count).cpu().data<long>().ToArray();     // [rows, count]
            float[] logprobs = _ringLogprobs.narrow(1, 0, count).cpu().data<float>().ToArray();
            _ringCount = 0;
            long kept = 0;
            for (int row = 0; row < Rows; row++)
                for (int s = 0; s < count && Live(row); s++, kept++)
                    Append(row, (int)tokens[row * count + s], logprobs[row * count + s]);
            _counters.AddTokens(kept);
        }

        private void Append(int row, int token, float logprob)
        {
            int request = _slotRequest[row];
            var ids = _ids[request];
            ids.Add(token);
            _logprobs[request].Add(logprob);
            if (_eos.Contains(token)) { Finish(row, FinishReason.Eos, null); return; }
            if (_options.StopStrings.Count > 0)
            {
                if (CutAtStop(_decode!(ids), _options.StopStrings) is string cut) { Finish(row, FinishReason.Stop, cut); return; }
            }
            if (ids.Count == _maxNew) Finish(row, FinishReason.Length, null);
        }

        private void Finish(int row, FinishReason reason, string? text)
        {
            int request = _slotRequest[row];
            _slotDone[row] = true;
            var result = new GenerationResult(_ids[request], _logprobs[request], reason, text ?? _decode?.Invoke(_ids[request]));
            _results[request] = result;
            _onFinished?.Invoke(request, result);
        }

        /// <summary>Waiting prompts take the free rows (an eighth of the rows at a time); with none waiting, idle rows leave once they are a quarter of the cache.</summary>
        private void Refill()
        {
            while (_waiting.Count > 0)
            {
                var free = Enumerable.Range(0, Rows).Where(r => !Live(r)).Take(_waiting.Count).ToList();
                // A join costs a prefill forward: wait until an eighth of the rows (or every waiting prompt) can join at once,
                // unless nothing decodes.
                bool anyLive = free.Count < Rows && Enumerable.Range(0, Rows).Any(Live);
                if (free.Count == 0 || (anyLive && free.Count < Math.Min(_joinAtOnce, _waiting.Count))) break;
                Admit(free.Select(row => (row, _waiting.Dequeue())).ToList());
            }
            if (_waiting.Count > 0) return;
            var live = Enumerable.Range(0, Rows).Where(Live).ToList();
            if (live.Count > 0 && (Rows - live.Count) * 4 >= Rows) KeepRows(live);
        }

        /// <summary>Prefills the joining prompts (in groups within the token budget) into their rows, ending at the write position.</summary>
        private void Admit(List<(int Row, int Request)> joins)
        {
            int longest = joins.Max(j => _requests[j.Request].PromptIds.Count);
            if (!Enumerable.Range(0, Rows).Any(Live))
                _cache.SetLength(longest);                      // nothing to keep: the window starts afresh
            else
            {
                _counters.AddJoined(joins.Count);
                if (_cache.Length < longest) MoveWindow(longest - LiveSpan()); // only when prompts join out of length order
            }
            int perGroup = (int)Math.Max(1, PrefillTokenBudget / longest);
            foreach (var group in joins.Chunk(perGroup)) Prefill(group);
        }

        private void Prefill((int Row, int Request)[] group)
        {
            using var scope = NewDisposeScope();
            _counters.AddPrefill();
            int g = group.Length;
            int p = group.Max(j => _requests[j.Request].PromptIds.Count);
            long end = _cache.Length;
            // Left padding within the group: [g, p] ids and mask.
            var ids = new long[g * p];
            var mask = new long[g * p];
            Array.Fill(ids, _padTokenId);
            for (int i = 0; i < g; i++)
            {
                var prompt = _requests[group[i].Request].PromptIds;
                int offset = p - prompt.Count;
                for (int t = 0; t < prompt.Count; t++) { ids[i * p + offset + t] = prompt[t]; mask[i * p + offset + t] = 1; }
            }
            bool padded = group.Any(j => _requests[j.Request].PromptIds.Count != p);
            var inputIds = tensor(ids, new long[] { g, p }, int64, _device);                   // [g, p] int64
            var promptMask = tensor(mask, new long[] { g, p }, int64, _device);                // [g, p] int64
            var positions = padded ? (promptMask.cumsum(1) - 1).clamp_min(0) : null;            // [g, p] int64
            using var own = new KvCache(_model.Config, g, p, _model.DType, _device);
            var hidden = _model.Hidden(new CausalLMInput(inputIds, padded ? promptMask : null, positions, own, _fused)); // [g, p, h]
            var uniforms = _uniforms is null ? null : Uniforms(group.Select(j => _requests[j.Request].Seed), _maxNew, _device); // [g, maxNew] float32
            var chosen = Choose(_model.Head(hidden.narrow(1, p - 1, 1)).squeeze(1), uniforms?.narrow(1, 0, 1), out var chosenLogp); // [g, 1] each

            var rows = tensor(group.Select(j => (long)j.Row).ToArray(), int64, _device);        // [g] int64
            _cache.WriteRows(own, rows, end - p, p);
            // The rows' masks: their prompt's positions visible, everything else hidden; the window over the same.
            var rowMask = full(new long[] { g, 1, 1, _capacity }, _hidden, _model.DType, _device);                        // [g, 1, 1, capacity]
            rowMask.narrow(3, end - p, p).copy_(zeros(new long[] { g, 1, 1, p }, _model.DType, _device).masked_fill(promptMask.eq(0).view(g, 1, 1, p), _hidden));
            _maskFull.index_copy_(0, rows, rowMask);
            if (_maskSliding is not null)
            {
                if (end - _window!.Value >= 0) rowMask.narrow(3, 0, end - _window.Value + 1).fill_(_hidden);
                _maskSliding.index_copy_(0, rows, rowMask);
            }
            _nextPosition.index_copy_(0, rows, promptMask.sum(1, keepdim: true));
            _current.index_copy_(0, rows, chosen);
            _step.index_copy_(0, rows, ones(new long[] { g, 1 }, int64, _device));
            if (uniforms is not null) _uniforms!.index_copy_(0, rows, uniforms);

            long[] first = chosen.cpu().data<long>().ToArray();
            float[] firstLogp = chosenLogp.cpu().data<float>().ToArray();
            for (int i = 0; i < g; i++)
            {
                var (row, request) = group[i];
                _slotRequest[row] = request;
                _slotStart[row] = end - _requests[request].PromptIds.Count;
                _slotSteps[row] = 1;
                _slotDone[row] = false;
                Append(row, (int)first[i], firstLogp[i]);
            }
        }

        /// <summary>Positions from the earliest start of a row that still decodes to the write position.</summary>
        private long LiveSpan() => _cache.Length - Enumerable.Range(0, Rows).Where(NeedsStep).Select(r => _slotStart[r]).DefaultIfEmpty(_cache.Length).Min();

        /// <summary>Moves the live rows' tokens (the last <see cref="LiveSpan"/> positions) to start at <paramref name="start"/>.</summary>
        private void MoveWindow(long start)
        {
            long span = LiveSpan();
            long from = _cache.Length - span;
            if (start + span > _capacity)
                throw new InvalidOperationException($"generation: {span} cached positions cannot move to {start} in a cache of {_capacity}");
            if (from == start) return;
            using var scope = NewDisposeScope();
            _counters.AddWindowMove();
            _cache.Move(from, span, start);
            foreach (var mask in new[] { _maskFull, _maskSliding })
            {
                if (mask is null) continue;
                var kept = mask.narrow(3, from, span).clone();                                  // [rows, 1, 1, span]
                mask.fill_(_hidden);
                mask.narrow(3, start, span).copy_(kept);
            }
            for (int row = 0; row < Rows; row++) _slotStart[row] += start - from;
            _cache.SetLength(start + span);
        }

        /// <summary>Drops every row but <paramref name="keep"/> from the cache and the per-row state.</summary>
        private void KeepRows(List<int> keep)
        {
            _counters.AddCompaction();
            using (var scope = NewDisposeScope())
            {
                var rows = tensor(keep.Select(r => (long)r).ToArray(), int64, _device);          // [n] int64
                _cache.KeepRows(rows);
                _maskFull = Select(_maskFull, rows)!;
                _maskSliding = Select(_maskSliding, rows);
                _nextPosition = Select(_nextPosition, rows)!;
                _current = Select(_current, rows)!;
                _step = Select(_step, rows)!;
                _uniforms = Select(_uniforms, rows);
                _ringTokens = Select(_ringTokens, rows)!;
                _ringLogprobs = Select(_ringLogprobs, rows)!;
            }
            _slotRequest = [.. keep.Select(r => _slotRequest[r])];
            _slotStart = [.. keep.Select(r => _slotStart[r])];
            _slotSteps = [.. keep.Select(r => _slotSteps[r])];
            _slotDone = [.. keep.Select(r => _slotDone[r])];
        }

        /// <summary>The rows <paramref name="rows"/> of <paramref name="field"/> as a tensor owned here; the old one is freed.</summary>
        private static Tensor? Select(Tensor? field, Tensor rows)
        {
            if (field is null) return null;
            var kept = field.index_select(0, rows).DetachFromDisposeScope();
            field.Dispose();
            return kept;
        }

        public void Dispose()
        {
            _cache.Dispose();
            _ownFused?.Dispose();
            _maskFull.Dispose();
            _maskSliding?.Dispose();
            _nextPosition.Dispose();
            _current.Dispose();
            _step.Dispose();
            _uniforms?.Dispose();
            _ringTokens.Dispose();
            _ringLogprobs.Dispose();
        }
    }
}
