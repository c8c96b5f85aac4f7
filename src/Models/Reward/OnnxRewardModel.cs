using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using PrefPipe.Models.Tokenizers;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Models.Reward;

/// <summary>Why a sequence got no score.</summary>
/// <param name="Index">Position of the sequence in the caller's list.</param>
/// <param name="Reason">What was wrong and what was expected.</param>
public sealed record RewardRejection(int Index, string Reason);

/// <summary>Scores for a list of sequences, in the caller's order; <see cref="float.NaN"/> where rejected.</summary>
/// <param name="Scores">One reward per sequence.</param>
/// <param name="Rejections">Sequences that were not scored, with the reason.</param>
public sealed record RewardScores(IReadOnlyList<float> Scores, IReadOnlyList<RewardRejection> Rejections);

/// <summary>
/// A Hugging Face sequence-classification model exported to ONNX (model.onnx + tokenizer.json), run by ONNX Runtime.
/// One shared <see cref="InferenceSession"/> (thread-safe for <c>Run</c>); inputs are read from the model: input_ids
/// (required), attention_mask, token_type_ids and position_ids (optional); the output is [batch, 1] or [batch, n].
/// </summary>
public sealed class OnnxRewardModel : IDisposable
{
    private static readonly string[] KnownInputs = ["input_ids", "attention_mask", "token_type_ids", "position_ids"];
    private static readonly string[] PadTokenNames = ["<pad>", "[PAD]", "<|pad|>", "<|padding|>"];

    private readonly InferenceSession _session;
    private readonly RewardModelOptions _options;
    private readonly string _outputName;
    private readonly string[] _outputNames;
    private readonly string[] _inputNames;
    private readonly bool _takesPositions;
    private readonly bool[] _int32Inputs;
    private readonly int _fixedBatch;
    private readonly int _fixedLength;
    private readonly string _path;

    private OnnxRewardModel(InferenceSession session, string path, ITextTokenizer? tokenizer, RewardModelOptions options,
        int padTokenId, string outputName, string provider, string? providerNote)
    {
        _session = session;
        _path = path;
        Tokenizer = tokenizer;
        _options = options;
        PadTokenId = padTokenId;
        _outputName = outputName;
        _outputNames = [outputName];
        _inputNames = session.InputMetadata.Keys.ToArray();
        _takesPositions = _inputNames.Contains("position_ids");
        _int32Inputs = _inputNames.Select(n => session.InputMetadata[n].ElementDataType == TensorElementType.Int32).ToArray();
        // A graph exported without dynamic axes takes exactly its traced batch and/or length: batches are filled up to
        // the batch size and sequences padded to the length (as a tokenizer with padding="max_length" would).
        _fixedBatch = FixedDim(session, 0);
        _fixedLength = FixedDim(session, 1);
        InputNames = _inputNames;
        ExecutionProvider = provider;
        ExecutionProviderNote = providerNote;
    }

    /// <summary>The tokenizer texts are encoded with, when the model was loaded from a folder with tokenizer.json.</summary>
    public ITextTokenizer? Tokenizer { get; }

    /// <summary>The pad id used for padding.</summary>
    public int PadTokenId { get; }

    /// <summary>The padding side in use (resolved when the options said Auto).</summary>
    public RewardPadding PaddingSide { get; private set; }

    /// <summary>The model's input names.</summary>
    public IReadOnlyList<string> InputNames { get; }

    /// <summary>The execution provider sessions run on.</summary>
    public string ExecutionProvider { get; }

    /// <summary>Why <see cref="RewardDevice.Auto"/> runs on CPU although this ONNX Runtime build has a CUDA provider
    /// (its libraries or a device are missing), or null.</summary>
    public string? ExecutionProviderNote { get; }

    /// <summary>The output the scores are read from (logits, else the one float output of rank 1 or 2, else the configured one).</summary>
    public string OutputName => _outputName;

    /// <summary>The longest sequence scored: the options' MaxLength, capped by a fixed sequence dimension of the graph.</summary>
    public int MaxLength => _fixedLength > 0 ? Math.Min(_options.MaxLength, _fixedLength) : _options.MaxLength;

    /// <summary>
    /// Loads model.onnx from a folder (or a .onnx path) and, when given, a tokenizer for text input.
    /// </summary>
    /// <param name="modelPath">A folder holding model.onnx, or the .onnx file.</param>
    /// <param name="tokenizer">The tokenizer of the folder (tokenizer.json), or null for id input only.</param>
    /// <param name="options">Scoring options; validated here.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is invalid.</exception>
    /// <exception cref="FileNotFoundException">No model.onnx.</exception>
    /// <exception cref="InvalidDataException">The model's inputs or outputs are not those of a sequence classifier.</exception>
    public static OnnxRewardModel Load(string modelPath, ITextTokenizer? tokenizer, RewardModelOptions? options = null)
    {
        options ??= new RewardModelOptions();
        options.Validate();
        string file = Directory.Exists(modelPath) ? Path.Combine(modelPath, "model.onnx") : modelPath;
        if (!File.Exists(file))
            throw new FileNotFoundException($"Reward model: {file} does not exist; expected a folder with model.onnx (a Hugging Face sequence classifier exported to ONNX) and tokenizer.json.", file);

        using var sessionOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (options.IntraOpThreads > 0) sessionOptions.IntraOpNumThreads = options.IntraOpThreads;
        string provider = AppendProvider(sessionOptions, options.Device, file, out string? providerNote);

        InferenceSession session;
        try
        {
            session = new InferenceSession(file, sessionOptions);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InvalidDataException($"Reward model {file}: ONNX Runtime cannot load it: {ex.Message}", ex);
        }
        try
        {
            ValidateInputs(file, session);
            string output = ValidateOutput(file, session, options);
            int pad = ResolvePadId(file, tokenizer, options);
            var model = new OnnxRewardModel(session, file, tokenizer, options, pad, output, provider, providerNote);
            model.PaddingSide = options.Padding == RewardPadding.Auto ? model.ProbePadding() : options.Padding;
            return model;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Scores texts (prompt and response already joined as the reward model was trained to read them).</summary>
    /// <exception cref="InvalidOperationException">The model was loaded without a tokenizer.</exception>
    public RewardScores ScoreTexts(IReadOnlyList<string> texts, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (Tokenizer is null)
            throw new InvalidOperationException($"Reward model {_path} was loaded without a tokenizer; score token ids instead or load tokenizer.json.");
        var ids = texts.Select(t => Tokenizer.Encode(t, _options.AddSpecialTokens)).ToList();
        return ScoreIds(ids, progress, cancellationToken);
    }

    /// <summary>Scores token id sequences: batched by length, padded, truncated per the options.</summary>
    /// <param name="sequences">One id list per sequence.</param>
    /// <param name="progress">Receives the number of sequences scored so far.</param>
    /// <param name="cancellationToken">Checked between batches; a running batch is terminated.</param>
    public RewardScores ScoreIds(IReadOnlyList<IReadOnlyList<int>> sequences, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        var scores = new float[sequences.Count];
        Array.Fill(scores, float.NaN);
        var rejections = new List<RewardRejection>();
        var prepared = new List<(int Index, int[] Ids)>(sequences.Count);
        for (int i = 0; i < sequences.Count; i++)
        {
            var s = sequences[i];
            if (s.Count == 0)
            {
                rejections.Add(new RewardRejection(i, "empty sequence: the reward model needs at least one token"));
                continue;
            }
            int maxLength = MaxLength;
            if (s.Count > maxLength)
            {
                switch (_options.Truncation)
                {
                    case RewardTruncation.Reject:
                        rejections.Add(new RewardRejection(i, $"{s.Count} tokens, more than max_length {maxLength}"));
                        continue;
                    case RewardTruncation.Left:
                        prepared.Add((i, s.Skip(s.Count - maxLength).ToArray()));
                        continue;
                    default:
                        prepared.Add((i, s.Take(maxLength).ToArray()));
                        continue;
                }
            }
            prepared.Add((i, s.ToArray()));
        }

        // Longest first: batches hold sequences of similar length, so little compute goes to padding.
        prepared.Sort((a, b) => b.Ids.Length.CompareTo(a.Ids.Length));
        // One set of run options for the whole call; cancelling sets its Terminate flag, which stops a running batch.
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        int done = 0;
        int start = 0;
        while (start < prepared.Count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int longest = _fixedLength > 0 ? _fixedLength : prepared[start].Ids.Length;
            int count = _fixedBatch > 0 ? _fixedBatch : Math.Min(_options.BatchSize, Math.Max(1, _options.MaxTokensPerBatch / longest));
            count = Math.Min(count, prepared.Count - start);
            var batch = prepared.GetRange(start, count);
            float[] batchScores;
            using (ComputeClock.Measure()) batchScores = RunBatch(batch.Select(b => b.Ids).ToList(), PaddingSide, runOptions, cancellationToken);
            for (int j = 0; j < count; j++) scores[batch[j].Index] = batchScores[j];
            start += count;
            done += count;
            progress?.Report(done);
        }
        return new RewardScores(scores, rejections);
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private float[] RunBatch(IReadOnlyList<int[]> batch, RewardPadding side, RunOptions? runOptions = null, CancellationToken cancellationToken = default)
    {
        int rows = batch.Count;
        // A fixed batch dimension is filled with copies of the last row (their scores are dropped).
        int b = _fixedBatch > 0 ? _fixedBatch : rows;
        if (rows > b) throw new InvalidOperationException($"Reward model {_path}: {rows} rows for a graph with fixed batch {b}.");
        int t = _fixedLength > 0 ? _fixedLength : batch.Max(x => x.Length);
        // input_ids, attention_mask, position_ids: [batch, seq]
        var ids = new long[b * t];
        var mask = new long[b * t];
        var positions = _takesPositions ? new long[b * t] : null;
        Array.Fill(ids, PadTokenId);
        for (int r = 0; r < b; r++)
        {
            int[] row = batch[Math.Min(r, rows - 1)];
            int n = row.Length;
            int offset = side == RewardPadding.Left ? t - n : 0;
            for (int c = 0; c < n; c++)
            {
                ids[r * t + offset + c] = row[c];
                mask[r * t + offset + c] = 1;
                if (positions is not null) positions[r * t + offset + c] = c;
            }
        }
        long[] shape = [b, t];
        var values = new OrtValue[_inputNames.Length];
        RunOptions? own = runOptions is null ? new RunOptions() : null;
        try
        {
            for (int i = 0; i < _inputNames.Length; i++)
            {
                long[] data = _inputNames[i] switch
                {
                    "input_ids" => ids,
                    "attention_mask" => mask,
                    "position_ids" => positions!,
                    _ => new long[b * t], // token_type_ids: one segment
                };
                values[i] = _int32Inputs[i]
                    ? OrtValue.CreateTensorValueFromMemory(Array.ConvertAll(data, x => checked((int)x)), shape)
                    : OrtValue.CreateTensorValueFromMemory(data, shape);
            }
            using var outputs = _session.Run(runOptions ?? own!, _inputNames, values, _outputNames);
            return ReadScores(outputs[0], b)[..rows];
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            foreach (var v in values) v?.Dispose();
            own?.Dispose();
        }
    }

    private float[] ReadScores(OrtValue output, int batch)
    {
        var info = output.GetTensorTypeAndShape();
        long[] shape = info.Shape;
        if (shape.Length is < 1 or > 2 || shape[0] != batch)
            throw new InvalidDataException($"Reward model {_path}: output '{_outputName}' has shape [{string.Join(", ", shape)}]; expected [batch, n] with batch {batch}.");
        int width = shape.Length == 1 ? 1 : (int)shape[1];
        if (_options.ScoreIndex >= width)
            throw new InvalidDataException($"Reward model {_path}: score index {_options.ScoreIndex} is out of range for output '{_outputName}' of shape [{string.Join(", ", shape)}] ({width} column(s)).");
        var result = new float[batch];
        switch (info.ElementDataType)
        {
            case TensorElementType.Float:
                var f32 = output.GetTensorDataAsSpan<float>();
                for (int r = 0; r < batch; r++) result[r] = f32[r * width + _options.ScoreIndex];
                break;
            case TensorElementType.Double:
                var f64 = output.GetTensorDataAsSpan<double>();
                for (int r = 0; r < batch; r++) result[r] = (float)f64[r * width + _options.ScoreIndex];
                break;
            case TensorElementType.Float16:
                var f16 = output.GetTensorDataAsSpan<Float16>();
                for (int r = 0; r < batch; r++) result[r] = (float)f16[r * width + _options.ScoreIndex];
                break;
            case TensorElementType.BFloat16:
                var bf16 = output.GetTensorDataAsSpan<BFloat16>();
                for (int r = 0; r < batch; r++) result[r] = (float)bf16[r * width + _options.ScoreIndex];
                break;
            default:
                throw new InvalidDataException($"Reward model {_path}: output '{_outputName}' is {info.ElementDataType}; expected a float tensor.");
        }
        return result;
    }

    private RewardPadding ProbePadding()
    {
        // A short sequence scored alone and padded by 3 on each side: the side whose score matches the unpadded one is
        // the side the exported graph expects (pooling by pad id → right; pooling the last position → left).
        int NonPad(int id) => id == PadTokenId ? id + 7 : id;
        int[] probe = Enumerable.Range(10, 6).Select(NonPad).ToArray();    // 6 tokens
        int[] longer = Enumerable.Range(20, 9).Select(NonPad).ToArray();   // 9 tokens: pads the probe by 3
        bool Same(float a, float b) => Math.Abs(a - b) <= 1e-4f * Math.Max(1f, Math.Abs(a));
        if (_fixedBatch == 1 && _fixedLength == 0) return RewardPadding.Right; // one sequence per run: never padded
        if (_fixedLength > 0)
        {
            // Every sequence is padded to the fixed length, so there is no unpadded score to compare with: padding on
            // either side must agree (pooling by pad id), else the side cannot be told.
            if (_fixedLength <= probe.Length)
                throw new InvalidDataException($"Reward model {_path}: input_ids has a fixed length of {_fixedLength}; too short to probe the padding side. Set Padding (Right or Left).");
            float r = RunBatch([probe], RewardPadding.Right)[0];
            float l = RunBatch([probe], RewardPadding.Left)[0];
            if (Same(r, l)) return RewardPadding.Right;
            throw new InvalidDataException(
                $"Reward model {_path}: input_ids has a fixed length of {_fixedLength} and the score depends on the padding side " +
                $"(right-padded {r}, left-padded {l}) with pad id {PadTokenId}; set Padding to the side the model was exported for, or re-export with dynamic axes.");
        }
        float alone = RunBatch([probe], RewardPadding.Right)[0];
        float right = RunBatch([probe, longer], RewardPadding.Right)[0];
        if (Same(alone, right)) return RewardPadding.Right;
        float left = RunBatch([probe, longer], RewardPadding.Left)[0];
        if (Same(alone, left)) return RewardPadding.Left;
        throw new InvalidDataException(
            $"Reward model {_path}: padding changes the score on either side (alone {alone}, right-padded {right}, left-padded {left}) " +
            $"with pad id {PadTokenId}; set the pad id the model was exported with (PadTokenId) or a fixed Padding side.");
    }

    private static void ValidateInputs(string file, InferenceSession session)
    {
        var inputs = session.InputMetadata;
        if (!inputs.ContainsKey("input_ids"))
            throw new InvalidDataException($"Reward model {file}: has inputs [{string.Join(", ", inputs.Keys)}]; expected input_ids (and optionally attention_mask, token_type_ids, position_ids).");
        foreach (var (name, meta) in inputs)
        {
            if (!KnownInputs.Contains(name))
                throw new InvalidDataException($"Reward model {file}: unexpected input '{name}'; expected only {string.Join(", ", KnownInputs)}.");
            if (meta.ElementDataType is not (TensorElementType.Int64 or TensorElementType.Int32) || meta.Dimensions.Length != 2)
                throw new InvalidDataException($"Reward model {file}: input '{name}' is {meta.ElementDataType} with {meta.Dimensions.Length} dimensions; expected int64 (or int32) [batch, sequence].");
        }
        for (int d = 0; d < 2; d++)
        {
            var fixedSizes = inputs.Where(i => i.Value.Dimensions[d] > 0).Select(i => $"{i.Key} [{string.Join(", ", i.Value.Dimensions)}]").ToList();
            if (inputs.Values.Where(m => m.Dimensions[d] > 0).Select(m => m.Dimensions[d]).Distinct().Count() > 1)
                throw new InvalidDataException($"Reward model {file}: the inputs disagree on their fixed {(d == 0 ? "batch" : "sequence")} size: {string.Join(", ", fixedSizes)}; all inputs are fed as one [batch, sequence].");
        }
    }

    /// <summary>A fixed size of dimension <paramref name="d"/> (0 batch, 1 sequence) in any input, or 0 when all are dynamic.</summary>
    private static int FixedDim(InferenceSession session, int d) =>
        session.InputMetadata.Values.Select(m => m.Dimensions[d]).Where(x => x > 0).DefaultIfEmpty(0).First();

    private static bool IsFloat(TensorElementType type) =>
        type is TensorElementType.Float or TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.Double;

    private static string ValidateOutput(string file, InferenceSession session, RewardModelOptions options)
    {
        var outputs = session.OutputMetadata;
        string Describe(string n) => $"{n} ({outputs[n].ElementDataType} [{string.Join(", ", outputs[n].Dimensions)}])";
        string name;
        if (options.OutputName is string configured)
        {
            if (!outputs.ContainsKey(configured))
                throw new InvalidDataException($"Reward model {file}: no output named '{configured}' (OutputName); outputs: {string.Join(", ", outputs.Keys.Select(Describe))}.");
            name = configured;
        }
        else if (outputs.ContainsKey("logits"))
            name = "logits";
        else
        {
            // torch.onnx names an unnamed output after its node (e.g. "linear_2"); extra outputs (past key/values,
            // hidden states) have rank 3 or more. One float output of rank 1 or 2 is the score; several are ambiguous.
            var candidates = outputs.Keys.Where(n => IsFloat(outputs[n].ElementDataType) && outputs[n].Dimensions.Length is 1 or 2).ToList();
            if (candidates.Count != 1)
                throw new InvalidDataException(
                    $"Reward model {file}: no output named 'logits' and {(candidates.Count == 0 ? "no" : candidates.Count.ToString())} float output(s) of shape [batch] or [batch, n] " +
                    $"among {string.Join(", ", outputs.Keys.Select(Describe))}; set OutputName to the score output.");
            name = candidates[0];
        }
        var meta = outputs[name];
        int[] dims = meta.Dimensions;
        if (!IsFloat(meta.ElementDataType))
            throw new InvalidDataException($"Reward model {file}: output '{name}' is {meta.ElementDataType}; expected a float tensor [batch, 1] or [batch, n].");
        if (dims.Length is < 1 or > 2)
            throw new InvalidDataException($"Reward model {file}: output '{name}' has {dims.Length} dimensions; expected [batch, 1] or [batch, n].");
        // Per-token scores ([batch, sequence], the classifier head without its pooling) share input_ids' sequence axis.
        string[] outSymbols = meta.SymbolicDimensions;
        string[] idSymbols = session.InputMetadata["input_ids"].SymbolicDimensions;
        if (dims.Length == 2 && dims[1] <= 0 && outSymbols.Length == 2 && idSymbols.Length == 2 && !string.IsNullOrEmpty(outSymbols[1]) && outSymbols[1] == idSymbols[1])
            throw new InvalidDataException(
                $"Reward model {file}: output '{name}' is [{outSymbols[0]}, {outSymbols[1]}], one score per token (its second axis is input_ids' sequence axis); " +
                "expected one pooled score per sequence [batch, n] (export the sequence-classification model, which pools the last non-pad token).");
        int width = dims.Length == 1 ? 1 : dims[1];
        if (width > 0 && options.ScoreIndex >= width)
            throw new InvalidDataException($"Reward model {file}: score index {options.ScoreIndex} is out of range for output '{name}' with {width} column(s).");
        return name;
    }

    private static int ResolvePadId(string file, ITextTokenizer? tokenizer, RewardModelOptions options)
    {
        if (options.PadTokenId is int explicitPad) return explicitPad;
        if (tokenizer?.PadTokenId is int pad) return pad;
        foreach (string name in PadTokenNames)
            if (tokenizer?.TokenToId(name) is int id) return id;
        if (tokenizer?.EosTokenId is int eos) return eos;
        throw new InvalidDataException($"Reward model {file}: cannot tell the pad id (no tokenizer pad token, no <pad>/[PAD] token, no EOS); set PadTokenId.");
    }

    /// <summary>
    /// CPU when asked; CUDA when asked (failing, with the reason, when it cannot load); with Auto, CUDA when this
    /// ONNX Runtime has the provider and it loads, else CPU with <paramref name="note"/> saying why.
    /// </summary>
    private static string AppendProvider(SessionOptions sessionOptions, RewardDevice device, string file, out string? note)
    {
        note = null;
        if (device == RewardDevice.Cpu) return OnnxRuntimeInfo.Cpu;
        if (OnnxRuntimeInfo.TryAppendCuda(sessionOptions, out string? error)) return OnnxRuntimeInfo.Cuda;
        if (device == RewardDevice.Cuda)
            throw new InvalidOperationException($"Reward model {file}: Device=Cuda, but {error}.");
        if (OrtEnv.Instance().GetAvailableProviders().Contains(OnnxRuntimeInfo.Cuda))
            note = $"scoring on CPU: {error}";
        return OnnxRuntimeInfo.Cpu;
    }
}
