using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Modules;
using TorchSharp;
using static TorchSharp.torch;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Models.Generation;

/// <summary>
/// Batched generation with a KV cache: prompts left-padded, decoding one token per step for the whole batch.
/// Each sample draws from its own seeded generator, one uniform number per step, mapped through the sorted CDF, so a
/// sample depends on its seed and prompt only — not on batch size, order or neighbours (up to floating-point noise
/// from different padding).
/// </summary>
public sealed partial class TextGenerator(CausalLM model, int padTokenId, Func<IReadOnlyList<int>, string>? decode = null)
{
    private readonly CausalLM _model = model ?? throw new ArgumentNullException(nameof(model));
    private readonly int _padTokenId = padTokenId;
    private readonly Func<IReadOnlyList<int>, string>? _decodeText = decode;

    /// <summary>
    /// Whether each call stacks q/k/v and gate/up into one matrix each for its forwards (<see cref="CausalLM.FuseProjections"/>;
    /// the same outputs, fewer operations per step, one more copy of those weights while the call runs). Default true.
    /// </summary>
    public bool FuseProjections { get; init; } = true;

    /// <summary>
    /// Fused projections the caller made once (<see cref="CausalLM.FuseProjections"/>, at load) and owns, used by every
    /// call instead of a copy per call; only while the model's weights do not change (ingest, evaluation — not PPO's
    /// rollouts, whose policy is trained between calls). Null: per call, as <see cref="FuseProjections"/> says.
    /// </summary>
    public InferenceWeights? Fused { get; init; }

    /// <summary>What this generator's calls have done so far (continuous batching's joins, moves and idle rows).</summary>
    public GenerationCounters Counters { get; } = new();

    /// <summary>Decoding steps between host reads of the generated tokens when nothing needs the text each step (CUDA only;
    /// every step on CPU, where a read costs no device sync). Finished rows are seen, and replaced, at these reads.</summary>
    private const int CudaReadEvery = 8;

    /// <summary>Generates one sample per request, all requests decoded together (rows that finish leave the batch).</summary>
    /// <exception cref="OperationCanceledException">Cancelled; checked every decoding step.</exception>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is out of range.</exception>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<GenerationRequest> requests, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        return Generate(requests, options, Math.Max(1, requests.Count), null, cancellationToken);
    }

    /// <summary>
    /// Generates one sample per request with continuous batching: at most <paramref name="maxBatchRows"/> sequences
    /// decode at once; a sequence that finishes leaves the batch and a waiting prompt is prefilled into its place
    /// (waiting prompts join longest first, so they fit the cache's current window without moving it); when none wait,
    /// finished rows are dropped from the cache once a quarter of the batch is idle. Each result is handed to
    /// <paramref name="onFinished"/> (request index, result) as soon as its sequence ends, on the calling thread.
    /// A sample depends on its seed and prompt only, up to floating-point noise from its neighbours.
    /// </summary>
    /// <param name="requests">The prompts and seeds.</param>
    /// <param name="options">Sampling options.</param>
    /// <param name="maxBatchRows">Sequences decoded at once (the KV cache holds this many rows).</param>
    /// <param name="onFinished">Called per finished request, or null.</param>
    /// <param name="cancellationToken">Checked every decoding step.</param>
    /// <returns>The results in request order.</returns>
    /// <exception cref="OperationCanceledException">Cancelled; checked every decoding step.</exception>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is out of range.</exception>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<GenerationRequest> requests, GenerationOptions options, int maxBatchRows,
        Action<int, GenerationResult>? onFinished, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchRows, 1);
        options.Validate();
        if (requests.Count == 0) return [];
        using var compute = ComputeClock.Measure();
        if (requests.Any(r => r.PromptIds.Count == 0)) throw new ArgumentException("every prompt needs at least one token (e.g. BOS)", nameof(requests));
        foreach (var r in requests) _model.Config.CheckTokenIds(r.PromptIds, "prompt");
        if (options.StopStrings.Count > 0 && _decodeText is null) throw new ArgumentException("stop strings need a decoder", nameof(options));
        var eos = new HashSet<int>(options.EosTokenIds ?? _model.Config.EosTokenIds);
        int longestPrompt = requests.Max(r => r.PromptIds.Count);
        if (_model.CacheGoesStale(1, longestPrompt + options.MaxNewTokens))
        {
            // Longrope past its original context: static batches in request order.
            var all = new GenerationResult[requests.Count];
            for (int start = 0; start < requests.Count; start += maxBatchRows)
            {
                var chunk = requests.Skip(start).Take(maxBatchRows).ToList();
                var results = GenerateStatic(chunk, options, eos, cancellationToken);
                for (int i = 0; i < results.Length; i++)
                {
                    all[start + i] = results[i];
                    onFinished?.Invoke(start + i, results[i]);
                }
            }
            return all;
        }
        using var batch = new ContinuousBatch(this, requests, options, eos, Math.Min(maxBatchRows, requests.Count), onFinished);
        return batch.Run(cancellationToken);
    }

    /// <summary>
    /// One static batch (every row from the first step to the last, finished rows feeding pads): what longrope models
    /// need when a sequence can cross the original context, since the cache is then re-encoded for the whole batch at
    /// one step, as transformers does.
    /// </summary>
    private GenerationResult[] GenerateStatic(List<GenerationRequest> requests, GenerationOptions options, HashSet<int> eos, CancellationToken cancellationToken)
    {
        var device = _model.Device;
        int b = requests.Count;
        int promptLength = requests.Max(r => r.PromptIds.Count);
        int maxNew = options.MaxNewTokens;

        using var noGrad = no_grad();
        using var outer = NewDisposeScope();
        // Left padding: [b, promptLength] ids and mask.
        var ids = new long[b * promptLength];
        var mask = new long[b * promptLength];
        Array.Fill(ids, _padTokenId);
        for (int r = 0; r < b; r++)
        {
            var p = requests[r].PromptIds;
            int offset = promptLength - p.Count;
            for (int i = 0; i < p.Count; i++) { ids[r * promptLength + offset + i] = p[i]; mask[r * promptLength + offset + i] = 1; }
        }
        var inputIds = tensor(ids, new long[] { b, promptLength }, int64, device);         // [b, P] int64
        // Prompts of one length need no padding mask: causal prefill, and each new token sees the whole cache.
        bool padded = requests.Any(r => r.PromptIds.Count != promptLength);
        var attention = zeros(new long[] { b, promptLength + maxNew }, int64, device);      // [b, P + N] int64
        attention.narrow(1, 0, promptLength).copy_(tensor(mask, new long[] { b, promptLength }, int64, device));
        // Each row's uniform draws for every step at once, from its own seeded generator: the same numbers as one draw
        // per step (CPU uniform_ fills serially, one generator call per element), without b tensors and a stack per step.
        Tensor? uniforms = null;                                                            // [b, N] float32
        if (!options.Greedy)
        {
            using var draws = NewDisposeScope();
            uniforms = Uniforms(requests.Select(r => r.Seed), maxNew, device).MoveToOuterDisposeScope();
        }

        var newIds = Enumerable.Range(0, b).Select(_ => new List<int>(maxNew)).ToArray();
        var logprobs = Enumerable.Range(0, b).Select(_ => new List<float>(maxNew)).ToArray();
        var reasons = new FinishReason?[b];
        var texts = new string?[b];
        using var cache = new KvCache(_model.Config, b, promptLength + maxNew, _model.DType, device);
        using var ownFused = Fused is null && FuseProjections ? _model.FuseProjections() : null;
        var fused = Fused ?? ownFused;

        // Tokens and log-probs stay on the device; the host reads them every few steps (every step with stop strings,
        // which need the text), so the GPU is not drained by a copy after each token.
        var tokenOut = full(new long[] { b, maxNew }, _padTokenId, int64, device);          // [b, N] int64
        var logpOut = zeros(new long[] { b, maxNew }, float32, device);                     // [b, N] float32
        var finished = zeros(new long[] { b }, ScalarType.Bool, device);                    // [b] bool: eos seen
        var eosIds = eos.Count > 0 ? tensor(eos.Select(e => (long)e).ToArray(), int64, device).unsqueeze(0) : null; // [1, E] int64
        int readEvery = options.StopStrings.Count > 0 || device.type != DeviceType.CUDA ? 1 : 16;
        int hostStep = 0;

        // Positions count real tokens only: left pads do not shift the prompt.
        var promptMask = attention.narrow(1, 0, promptLength);
        Tensor? positions = padded ? (promptMask.cumsum(1) - 1).clamp_min(0) : null;        // [b, P]
        var nextPosition = promptMask.sum(1, keepdim: true);                                // [b, 1]
        var current = inputIds;
        for (int step = 0; step < maxNew; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using (var scope = NewDisposeScope())
            {
                long seen = cache.Length + current.shape[1];
                if (_model.CacheGoesStale(cache.Length, seen))
                {
                    // Longrope passes its original context here: re-encode prompt and generated tokens with the long
                    // factors, as transformers' Phi-3 prepare_inputs_for_generation drops the cache at this step.
                    cache.Reset();
                    current = cat([inputIds, tokenOut.narrow(1, 0, step)], 1);                                   // [b, seen]
                    if (padded) positions = (attention.narrow(1, 0, seen).cumsum(1) - 1).clamp_min(0);           // [b, seen]
                }
                var hidden = _model.Hidden(new CausalLMInput(current, padded ? attention.narrow(1, 0, seen) : null, positions, cache, fused)); // [b, t, h]
                var logits = _model.Head(hidden.narrow(1, hidden.shape[1] - 1, 1)).squeeze(1);                        // [b, vocab]
                if (logits.dtype != float32) logits = logits.to(float32);
                var logp = logits.log_softmax(-1);                                                                   // [b, vocab]
                var chosen = options.Greedy ? logits.argmax(-1) : Sample(logits, options, uniforms!.narrow(1, step, 1));             // [b] int64
                chosen = chosen.masked_fill(finished, _padTokenId);                                                  // finished rows feed pads
                var chosenLogp = logp.gather(1, chosen.unsqueeze(1)).squeeze(1);                                    // [b]
                tokenOut.select(1, step).copy_(chosen);
                logpOut.select(1, step).copy_(chosenLogp);
                if (eosIds is not null) finished.logical_or_(chosen.unsqueeze(1).eq(eosIds).any(1));

                // Next step: one new token per row, attended, at the next position.
                if (padded)
                {
                    attention.narrow(1, seen, 1).fill_(1);
                    var nextPos = nextPosition.clone();
                    nextPosition.add_(1);
                    positions = nextPos.MoveToOuterDisposeScope();
                }
                current = chosen.unsqueeze(1).MoveToOuterDisposeScope();                                          // [b, 1]
            }

            if ((step + 1) % readEvery != 0 && step + 1 < maxNew) continue;
            using var readScope = NewDisposeScope();
            int count = step + 1 - hostStep;
            long[] tokens = tokenOut.narrow(1, hostStep, count).cpu().data<long>().ToArray();   // [b, count]
            float[] tokenLogp = logpOut.narrow(1, hostStep, count).cpu().data<float>().ToArray();
            bool stopStringHit = false;
            for (int s = 0; s < count; s++)
            {
                for (int r = 0; r < b; r++)
                {
                    if (reasons[r] is not null) continue;
                    int token = (int)tokens[r * count + s];
                    newIds[r].Add(token);
                    logprobs[r].Add(tokenLogp[r * count + s]);
                    if (eos.Contains(token)) { reasons[r] = FinishReason.Eos; continue; }
                    if (options.StopStrings.Count > 0)
                    {
                        if (CutAtStop(_decodeText!(newIds[r]), options.StopStrings) is string cut) { reasons[r] = FinishReason.Stop; texts[r] = cut; stopStringHit = true; }
                    }
                }
            }
            hostStep = step + 1;
            if (reasons.All(x => x is not null)) break;
            if (stopStringHit)
            {
                // Rows stopped by a stop string feed pads from now on, as rows that met EOS do.
                var stopped = tensor(reasons.Select(x => x is not null).ToArray(), ScalarType.Bool, device); // [b] bool
                finished.logical_or_(stopped);
            }
        }

        // The counters as continuous batching keeps them: the first step is the prefill; every later step ran all b rows.
        int steps = newIds.Max(ids => ids.Count);
        Counters.AddPrefill();
        for (int step = 1; step < steps; step++) Counters.AddStep(b);
        Counters.AddTokens(newIds.Sum(ids => (long)ids.Count) - b);
        var results = new GenerationResult[b];
        for (int r = 0; r < b; r++)
        {
            var reason = reasons[r] ?? FinishReason.Length;
            string? text = texts[r] ?? _decodeText?.Invoke(newIds[r]);
            results[r] = new GenerationResult(newIds[r], logprobs[r], reason, text);
        }
        return results;
    }

    /// <summary>
    /// Each request's uniform draws for its whole sequence, from its own seeded generator, as [requests, maxNew] float32 on
    /// <paramref name="device"/>: CPU uniform_ fills serially, one generator call per element, so these are the numbers one
    /// draw per step would give — a sample depends on its seed only, not on its batch.
    /// </summary>
    private static Tensor Uniforms(IEnumerable<long> seeds, int maxNew, Device device) =>
        stack(seeds.Select(seed =>
        {
            using var generator = new torch.Generator((ulong)seed, CPU);
            return rand(maxNew, float32, CPU, generator: generator);
        }).ToArray()).to(device);

    /// <summary>The text up to the first stop string it contains (the earliest position over all of them), or null.</summary>
    private static string? CutAtStop(string text, IReadOnlyList<string> stops)
    {
        int cut = stops.Select(x => text.IndexOf(x, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        return cut >= 0 ? text[..cut] : null;
    }

    /// <summary>Temperature, top-k, top-p (in that order, as transformers), then inverse-CDF sampling with each row's uniform draw.</summary>
    /// <param name="logits">[b, vocab] float32</param>
    /// <param name="options">Temperature, top-k, top-p.</param>
    /// <param name="u">This step's uniform draw per row, [b, 1] float32 on the logits' device.</param>
    private static Tensor Sample(Tensor logits, GenerationOptions options, Tensor u)
    {
        var scaled = logits / options.Temperature;                               // [b, vocab] float32
        if (options.TopK > 0 && options.TopK < scaled.shape[1])
        {
            var kth = scaled.topk(options.TopK, -1).values.narrow(1, options.TopK - 1, 1); // [b, 1]
            scaled = scaled.masked_fill(scaled.lt(kth), float.NegativeInfinity);
        }
        var (sorted, order) = scaled.sort(-1, descending: true);                  // [b, vocab]
        var probs = sorted.softmax(-1);
        if (options.TopP < 1.0)
        {
            // Drop tokens once the mass before them reaches top_p (the first token always stays).
            var before = probs.cumsum(-1) - probs;
            probs = probs.masked_fill(before.ge(options.TopP), 0);
            probs = probs / probs.sum(-1, keepdim: true);
        }
        var cdf = probs.cumsum(-1);                                               // [b, vocab]
        var index = searchsorted(cdf, u * cdf.narrow(1, cdf.shape[1] - 1, 1)).clamp_max(cdf.shape[1] - 1); // [b, 1]
        return order.gather(1, index).squeeze(1);                                  // [b] int64
    }
}
