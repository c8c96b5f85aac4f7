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

    /// <summary>
    /// Loads model.onnx from a folder (or a .onnx path) and, when given, a tokenizer for text input.
    /// </summary>
    /// <param name="modelPath">A folder holding model.onnx, or the .onnx file.</param>
    /// <param name="tokenizer">The tokenizer of the folder (tokenizer.json), or null for id input only.</param>
    /// <param name="options">Scoring options; validated here.</param>
    /// <exception cref="FileNotFoundException">No model.onnx.</exception>
    /// <exception cref="InvalidDataException">The model's inputs or outputs are not those of a sequence classifier.</exception>
    public static OnnxRewardModel Load(string modelPath, ITextTokenizer? tokenizer, RewardModelOptions? options = null)
    {
        options ??= new RewardModelOptions();
        options.ValidateOrThrow();
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
            string output = ValidateOutput(file, session, options.ScoreIndex);
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
            if (s.Count > _options.MaxLength)
            {
                switch (_options.Truncation)
                {
                    case RewardTruncation.Reject:
                        rejections.Add(new RewardRejection(i, $"{s.Count} tokens, more than max_length {_options.MaxLength}"));
                        continue;
                    case RewardTruncation.Left:
                        prepared.Add((i, s.Skip(s.Count - _options.MaxLength).ToArray()));
                        continue;
                    default:
                        prepared.Add((i, s.Take(_options.MaxLength).ToArray()));
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
            int longest = prepared[start].Ids.Length;
            int count = Math.Min(_options.BatchSize, Math.Max(1, _options.MaxTokensPerBatch / longest));
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
        int b = batch.Count;
        int t = batch.Max(x => x.Length);
        // input_ids, attention_mask, position_ids: [batch, seq] int64
        var ids = new long[b * t];
        var mask = new long[b * t];
        var positions = _takesPositions ? new long[b * t] : null;
        Array.Fill(ids, PadTokenId);
        for (int r = 0; r < b; r++)
        {
            int n = batch[r].Length;
            int offset = side == RewardPadding.Left ? t - n : 0;
            for (int c = 0; c < n; c++)
            {
                ids[r * t + offset + c] = batch[r][c];
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
                values[i] = OrtValue.CreateTensorValueFromMemory(data, shape);
            }
            using var outputs = _session.Run(runOptions ?? own!, _inputNames, values, _outputNames);
            return ReadScores(outputs[0], b);
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
        int width = shape.Length == 1 ? 1 : (int)shape[1];
        if (shape.Length > 2 || shape[0] != batch)
            throw new InvalidDataException($"Reward model {_path}: output '{_outputName}' has shape [{string.Join(", ", shape)}]; expected [batch, n] with batch {batch}.");
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
        float alone = RunBatch([probe], RewardPadding.Right)[0];
        float right = RunBatch([probe, longer], RewardPadding.Right)[0];
        if (Math.Abs(alone - right) <= 1e-4f * Math.Max(1f, Math.Abs(alone))) return RewardPadding.Right;
        float left = RunBatch([probe, longer], RewardPadding.Left)[0];
        if (Math.Abs(alone - left) <= 1e-4f * Math.Max(1f, Math.Abs(alone))) return RewardPadding.Left;
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
            if (meta.ElementDataType != TensorElementType.Int64 || meta.Dimensions.Length != 2)
                throw new InvalidDataException($"Reward model {file}: input '{name}' is {meta.ElementDataType} with {meta.Dimensions.Length} dimensions; expected int64 [batch, sequence].");
        }
    }

    private static string ValidateOutput(string file, InferenceSession session, int scoreIndex)
    {
        var outputs = session.OutputMetadata;
        string name = outputs.ContainsKey("logits") ? "logits" : outputs.Keys.First();
        var meta = outputs[name];
        int[] dims = meta.Dimensions;
        if (dims.Length is < 1 or > 2)
            throw new InvalidDataException($"Reward model {file}: output '{name}' has {dims.Length} dimensions; expected [batch, 1] or [batch, n].");
        int width = dims.Length == 1 ? 1 : dims[1];
        if (width > 0 && scoreIndex >= width)
            throw new InvalidDataException($"Reward model {file}: score index {scoreIndex} is out of range for output '{name}' with {width} column(s).");
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
