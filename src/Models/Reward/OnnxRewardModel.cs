using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using PrefPipe.Models.Runtime;
using PrefPipe.Text.Tokenizers;

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
/// Opening and checking the graph, and choosing its execution provider, is <see cref="RewardGraph"/>'s; this class
/// encodes, truncates, batches, pads and reads the scores.
/// </summary>
public sealed class OnnxRewardModel : IDisposable
{
    private static readonly string[] PadTokenNames = ["<pad>", "[PAD]", "<|pad|>", "<|padding|>"];

    private readonly RewardGraph _graph;
    private readonly RewardModelOptions _options;
    private readonly string _path;

    private OnnxRewardModel(RewardGraph graph, ITextTokenizer? tokenizer, RewardModelOptions options, int padTokenId)
    {
        _graph = graph;
        _path = graph.ModelFile;
        Tokenizer = tokenizer;
        _options = options;
        PadTokenId = padTokenId;
    }

    /// <summary>The tokenizer texts are encoded with, when the model was loaded from a folder with tokenizer.json.</summary>
    public ITextTokenizer? Tokenizer { get; }

    /// <summary>The pad id used for padding.</summary>
    public int PadTokenId { get; }

    /// <summary>The padding side in use (resolved when the options said Auto).</summary>
    public RewardPadding PaddingSide { get; private set; }

    /// <summary>The model's input names.</summary>
    public IReadOnlyList<string> InputNames => _graph.InputNames;

    /// <summary>The execution provider sessions run on.</summary>
    public string ExecutionProvider => _graph.ExecutionProvider;

    /// <summary>Why <see cref="RewardDevice.Auto"/> runs on CPU although this ONNX Runtime build has a CUDA provider
    /// (its libraries or a device are missing), or null.</summary>
    public string? ExecutionProviderNote => _graph.ExecutionProviderNote;

    /// <summary>The output the scores are read from (logits, else the one float output of rank 1 or 2, else the configured one).</summary>
    public string OutputName => _graph.OutputName;

    /// <summary>The longest sequence scored: the options' MaxLength, capped by a fixed sequence dimension of the graph.</summary>
    public int MaxLength => _graph.FixedLength > 0 ? Math.Min(_options.MaxLength, _graph.FixedLength) : _options.MaxLength;

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
        var graph = RewardGraph.Open(modelPath, options);
        try
        {
            int pad = ResolvePadId(graph.ModelFile, tokenizer, options);
            var model = new OnnxRewardModel(graph, tokenizer, options, pad);
            model.PaddingSide = options.Padding == RewardPadding.Auto ? model.ProbePadding() : options.Padding;
            return model;
        }
        catch
        {
            graph.Dispose();
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
            int longest = _graph.FixedLength > 0 ? _graph.FixedLength : prepared[start].Ids.Length;
            int count = _graph.FixedBatch > 0 ? _graph.FixedBatch : Math.Min(_options.BatchSize, Math.Max(1, _options.MaxTokensPerBatch / longest));
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
    public void Dispose() => _graph.Dispose();

    private float[] RunBatch(List<int[]> batch, RewardPadding side, RunOptions? runOptions = null, CancellationToken cancellationToken = default)
    {
        int rows = batch.Count;
        // A fixed batch dimension is filled with copies of the last row (their scores are dropped); a fixed length pads
        // every sequence to it (as a tokenizer with padding="max_length" would).
        int b = _graph.FixedBatch > 0 ? _graph.FixedBatch : rows;
        if (rows > b) throw new InvalidOperationException($"Reward model {_path}: {rows} rows for a graph with fixed batch {b}.");
        int t = _graph.FixedLength > 0 ? _graph.FixedLength : batch.Max(x => x.Length);
        // input_ids, attention_mask, position_ids: [batch, seq]
        var ids = new long[b * t];
        var mask = new long[b * t];
        var positions = _graph.TakesPositions ? new long[b * t] : null;
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
        RunOptions? own = runOptions is null ? new RunOptions() : null;
        try
        {
            using var outputs = _graph.Run(ids, mask, positions, [b, t], runOptions ?? own!);
            return ReadScores(outputs[0], b)[..rows];
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            own?.Dispose();
        }
    }

    private float[] ReadScores(OrtValue output, int batch)
    {
        var info = output.GetTensorTypeAndShape();
        long[] shape = info.Shape;
        if (shape.Length is < 1 or > 2 || shape[0] != batch)
            throw new InvalidDataException($"Reward model {_path}: output '{OutputName}' has shape [{string.Join(", ", shape)}]; expected [batch, n] with batch {batch}.");
        int width = shape.Length == 1 ? 1 : (int)shape[1];
        if (_options.ScoreIndex >= width)
            throw new InvalidDataException($"Reward model {_path}: score index {_options.ScoreIndex} is out of range for output '{OutputName}' of shape [{string.Join(", ", shape)}] ({width} column(s)).");
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
                throw new InvalidDataException($"Reward model {_path}: output '{OutputName}' is {info.ElementDataType}; expected a float tensor.");
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
        if (_graph.FixedBatch == 1 && _graph.FixedLength == 0) return RewardPadding.Right; // one sequence per run: never padded
        if (_graph.FixedLength > 0)
        {
            // Every sequence is padded to the fixed length, so there is no unpadded score to compare with: padding on
            // either side must agree (pooling by pad id), else the side cannot be told.
            if (_graph.FixedLength <= probe.Length)
                throw new InvalidDataException($"Reward model {_path}: input_ids has a fixed length of {_graph.FixedLength}; too short to probe the padding side. Set Padding (Right or Left).");
            float r = RunBatch([probe], RewardPadding.Right)[0];
            float l = RunBatch([probe], RewardPadding.Left)[0];
            if (Same(r, l)) return RewardPadding.Right;
            throw new InvalidDataException(
                $"Reward model {_path}: input_ids has a fixed length of {_graph.FixedLength} and the score depends on the padding side " +
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

    private static int ResolvePadId(string file, ITextTokenizer? tokenizer, RewardModelOptions options)
    {
        if (options.PadTokenId is int explicitPad) return explicitPad;
        if (tokenizer?.PadTokenId is int pad) return pad;
        foreach (string name in PadTokenNames)
            if (tokenizer?.TokenToId(name) is int id) return id;
        if (tokenizer?.EosTokenId is int eos) return eos;
        throw new InvalidDataException($"Reward model {file}: cannot tell the pad id (no tokenizer pad token, no <pad>/[PAD] token, no EOS); set PadTokenId.");
    }
}
