using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Models.Reward;

/// <summary>
/// An exported sequence classifier opened in ONNX Runtime and checked before anything is scored: its inputs (which of
/// input_ids, attention_mask, token_type_ids, position_ids; int64 or int32; fixed or dynamic batch and sequence), the
/// output scores are read from, and the execution provider its session runs on. Owns the session.
/// </summary>
internal sealed class RewardGraph : IDisposable
{
    private static readonly string[] KnownInputs = ["input_ids", "attention_mask", "token_type_ids", "position_ids"];

    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly bool[] _int32Inputs;
    private readonly string[] _outputNames;

    private RewardGraph(InferenceSession session, string file, string outputName, string provider, string? providerNote)
    {
        _session = session;
        ModelFile = file;
        OutputName = outputName;
        _outputNames = [outputName];
        _inputNames = session.InputMetadata.Keys.ToArray();
        _int32Inputs = _inputNames.Select(n => session.InputMetadata[n].ElementDataType == TensorElementType.Int32).ToArray();
        TakesPositions = _inputNames.Contains("position_ids");
        // A graph exported without dynamic axes takes exactly its traced batch and/or length.
        FixedBatch = FixedDim(session, 0);
        FixedLength = FixedDim(session, 1);
        ExecutionProvider = provider;
        ExecutionProviderNote = providerNote;
    }

    /// <summary>The model.onnx file, as error messages name it.</summary>
    public string ModelFile { get; }

    /// <summary>The graph's input names, in its order.</summary>
    public IReadOnlyList<string> InputNames => _inputNames;

    /// <summary>Whether the graph takes position_ids.</summary>
    public bool TakesPositions { get; }

    /// <summary>The fixed batch size of the inputs, or 0 when dynamic.</summary>
    public int FixedBatch { get; }

    /// <summary>The fixed sequence length of the inputs, or 0 when dynamic.</summary>
    public int FixedLength { get; }

    /// <summary>The output scores are read from.</summary>
    public string OutputName { get; }

    /// <summary>The execution provider the session runs on.</summary>
    public string ExecutionProvider { get; }

    /// <summary>Why <see cref="RewardDevice.Auto"/> runs on CPU although this ONNX Runtime build has a CUDA provider, or null.</summary>
    public string? ExecutionProviderNote { get; }

    /// <summary>Opens model.onnx from a folder (or a .onnx path) on the provider the options ask for, and checks its inputs and output.</summary>
    /// <param name="modelPath">A folder holding model.onnx, or the .onnx file.</param>
    /// <param name="options">Validated scoring options (device, threads, output name, score index).</param>
    /// <exception cref="FileNotFoundException">No model.onnx.</exception>
    /// <exception cref="InvalidOperationException">Device=Cuda and the CUDA provider does not load.</exception>
    /// <exception cref="InvalidDataException">ONNX Runtime cannot load the file, or its inputs or outputs are not those of a sequence classifier.</exception>
    public static RewardGraph Open(string modelPath, RewardModelOptions options)
    {
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
            return new RewardGraph(session, file, output, provider, providerNote);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs one batch: input_ids, attention_mask and position_ids as given, token_type_ids all 0 (one segment), each
    /// fed as the graph's integer type. Returns the score output; the caller disposes it.
    /// </summary>
    /// <param name="ids">input_ids, [batch, seq] row-major.</param>
    /// <param name="mask">attention_mask, [batch, seq].</param>
    /// <param name="positions">position_ids, [batch, seq]; null when the graph does not take them.</param>
    /// <param name="shape">[batch, seq].</param>
    /// <param name="runOptions">Whose Terminate flag stops the run.</param>
    public IDisposableReadOnlyCollection<OrtValue> Run(long[] ids, long[] mask, long[]? positions, long[] shape, RunOptions runOptions)
    {
        var values = new OrtValue[_inputNames.Length];
        try
        {
            for (int i = 0; i < _inputNames.Length; i++)
            {
                long[] data = _inputNames[i] switch
                {
                    "input_ids" => ids,
                    "attention_mask" => mask,
                    "position_ids" => positions!,
                    _ => new long[ids.Length], // token_type_ids: one segment
                };
                values[i] = _int32Inputs[i]
                    ? OrtValue.CreateTensorValueFromMemory(Array.ConvertAll(data, x => checked((int)x)), shape)
                    : OrtValue.CreateTensorValueFromMemory(data, shape);
            }
            return _session.Run(runOptions, _inputNames, values, _outputNames);
        }
        finally
        {
            foreach (var v in values) v?.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

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
