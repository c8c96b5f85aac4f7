using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Optimization;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>trainer_state.json: where training stood when a checkpoint was written.</summary>
public sealed record TrainerState
{
    /// <summary>Optimizer steps done.</summary>
    [JsonPropertyName("global_step")] public long GlobalStep { get; init; }

    /// <summary>Total optimizer steps of the run.</summary>
    [JsonPropertyName("max_steps")] public long MaxSteps { get; init; }

    /// <summary>Epoch of the next batch.</summary>
    [JsonPropertyName("epoch")] public int Epoch { get; init; }

    /// <summary>Index of the next batch within that epoch.</summary>
    [JsonPropertyName("batch")] public int Batch { get; init; }

    /// <summary>
    /// The run seed: the data order is a function of seed and epoch; a LoRA adapter's generator (A's initial values,
    /// dropout masks) starts from it and continues from its saved state (training_state/rng_state.safetensors).
    /// </summary>
    [JsonPropertyName("seed")] public long Seed { get; init; }

    /// <summary>Stage that wrote it (dpo or ppo).</summary>
    [JsonPropertyName("stage")] public string Stage { get; init; } = "";

    /// <summary>Stage-specific numbers (e.g. PPO's KL coefficient).</summary>
    [JsonPropertyName("extra")] public Dictionary<string, double> Extra { get; init; } = [];

    /// <summary>
    /// What this training is: a hash of its options, its data (token ids) and its start model. A checkpoint is resumed only
    /// by the same training; null in checkpoints written before it was recorded.
    /// </summary>
    [JsonPropertyName("training_fingerprint")] public string? TrainingFingerprint { get; init; }

    /// <summary>Every metric logged up to this checkpoint (as transformers' log_history), so a resumed run reports them all.</summary>
    [JsonPropertyName("log_history")] public List<PrefPipe.Artifacts.Rows.MetricRow> LogHistory { get; init; } = [];
}

/// <summary>Which checkpoint a training resumes from.</summary>
public static class TrainingResume
{
    /// <summary>
    /// The latest checkpoint in <paramref name="outputDirectory"/> and its state, or nulls when there is none. A checkpoint
    /// of another training (other options, data or start model) is never resumed.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder holds checkpoints of a different training (names the folder and what to do).</exception>
    public static (string? Checkpoint, TrainerState? State) From(string outputDirectory, string fingerprint)
    {
        string? latest = Checkpoint.Latest(outputDirectory);
        if (latest is null) return (null, null);
        var state = Checkpoint.ReadState(latest);
        if (state.TrainingFingerprint is { } recorded && !string.Equals(recorded, fingerprint, StringComparison.Ordinal))
            throw new InvalidDataException($"{outputDirectory}: holds checkpoints of another training ({Path.GetFileName(latest)} was made with other options, data or start model); " +
                "resuming it would continue that training. Use a new output folder, or delete its checkpoint-* folders to start over.");
        return (latest, state);
    }

    /// <summary>A fingerprint of a training: its options (as JSON) and the given parts (data and model fingerprints).</summary>
    public static string Fingerprint(object options, params string[] parts)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(options)));
        foreach (string part in parts) sha.AppendData(System.Text.Encoding.UTF8.GetBytes("\u001f" + part));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}

/// <summary>
/// A training checkpoint in Hugging Face layout: config.json, the weights (model.safetensors, or shards and
/// model.safetensors.index.json), generation_config.json, the tokenizer files with the chat template, and trainer_state.json.
/// transformers and vLLM load the folder as a model as it is (vLLM loads every *.safetensors of a folder without an index,
/// so no other state sits beside the weights). What an exact resume needs besides (optimizer state, PPO's value model and
/// its optimizer) is in the <see cref="StateFolder"/> subfolder. Written to a temporary folder and renamed, so a
/// checkpoint folder is either complete or absent.
/// </summary>
public static class Checkpoint
{
    /// <summary>The subfolder of a checkpoint that holds resume state which is not the model.</summary>
    public const string StateFolder = "training_state";

    /// <summary>
    /// Resume state that checkpoints written before <see cref="StateFolder"/> kept beside the weights: still read when
    /// resuming, and never counted as weights.
    /// </summary>
    internal static readonly string[] LegacyStateFiles = [OptimizerFile, ExtraFile];

    private const string OptimizerFile = "optimizer.safetensors";
    private const string ExtraFile = "extra.safetensors";
    private const string RngStateFile = "rng_state.safetensors";
    private const string LoraGeneratorKey = "lora";

    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    private static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json", "chat_template.jinja",
         "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"];

    /// <summary>Writes a checkpoint folder; weights above <paramref name="maxShardBytes"/> are sharded with an index, as save_pretrained does.</summary>
    /// <param name="directory">The checkpoint-N folder.</param>
    /// <param name="model">The model.</param>
    /// <param name="optimizer">Its optimizer (state goes to <see cref="StateFolder"/>).</param>
    /// <param name="state">trainer_state.json.</param>
    /// <param name="tokenizerSource">The folder whose tokenizer and generation files are copied.</param>
    /// <param name="extraTensors">Stage state for <see cref="StateFolder"/>/extra.safetensors, or null.</param>
    /// <param name="adapter">A LoRA run's adapter: the checkpoint is then a PEFT adapter folder (adapter_config.json,
    /// adapter_model.safetensors) instead of the full weights, and its generator's state goes to
    /// <see cref="StateFolder"/>/rng_state.safetensors.</param>
    /// <param name="adapterBase">The adapter's base model folder (its base_model_name_or_path).</param>
    /// <param name="maxShardBytes">Shard size of full weights (adapters are one file).</param>
    public static void Save(string directory, CausalLM model, FlatAdamW optimizer, TrainerState state, string tokenizerSource,
        IReadOnlyDictionary<string, Tensor>? extraTensors = null, LoraAdapter? adapter = null, string? adapterBase = null,
        long maxShardBytes = SafeTensorsWriter.DefaultMaxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        using var scope = NewDisposeScope(); // what writing makes (the optimizer's step tensor) dies here, not with the GC
        string full = Path.GetFullPath(directory);
        string staging = full + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        if (adapter is not null) adapter.Save(staging, Path.GetFullPath(adapterBase ?? throw new ArgumentNullException(nameof(adapterBase))));
        else model.Save(staging, maxShardBytes);
        foreach (string f in TokenizerFiles)
            if (File.Exists(Path.Combine(tokenizerSource, f))) File.Copy(Path.Combine(tokenizerSource, f), Path.Combine(staging, f), overwrite: true);
        string stateDir = Directory.CreateDirectory(Path.Combine(staging, StateFolder)).FullName;
        SafeTensorsWriter.Write(Path.Combine(stateDir, OptimizerFile), optimizer.StateDict());
        if (extraTensors is not null) SafeTensorsWriter.Write(Path.Combine(stateDir, ExtraFile), extraTensors);
        if (adapter is not null)
            SafeTensorsWriter.Write(Path.Combine(stateDir, RngStateFile), new Dictionary<string, Tensor> { [LoraGeneratorKey] = adapter.Generator.get_state() }); // [5056] uint8
        File.WriteAllText(Path.Combine(staging, "trainer_state.json"), JsonSerializer.Serialize(state, IndentedJson));
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.Move(staging, full);
    }

    /// <summary>Reads trainer_state.json of a checkpoint.</summary>
    /// <exception cref="InvalidDataException">Not a complete checkpoint (names what is missing).</exception>
    public static TrainerState ReadState(string directory)
    {
        foreach (string f in new[] { AdapterConfig.IsAdapter(directory) ? AdapterConfig.FileName : "config.json", "trainer_state.json" })
            if (!File.Exists(Path.Combine(directory, f)))
                throw new InvalidDataException($"{directory} is not a resumable checkpoint: {f} is missing.");
        if (!File.Exists(StateFile(directory, OptimizerFile)))
            throw new InvalidDataException($"{directory} is not a resumable checkpoint: {StateFolder}/{OptimizerFile} is missing.");
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(directory, "trainer_state.json")))
               ?? throw new InvalidDataException($"{directory}/trainer_state.json is empty.");
    }

    /// <summary>Restores the optimizer state from a checkpoint.</summary>
    public static void LoadOptimizer(string directory, FlatAdamW optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        using var file = SafeTensorsFile.Open(StateFile(directory, OptimizerFile));
        using var scope = NewDisposeScope();
        optimizer.LoadStateDict(file.Tensors.Keys.ToDictionary(k => k, k => file.Load(k)));
    }

    /// <summary>
    /// Loads a LoRA run's adapter weights from a checkpoint and sets its generator to the saved state, so the resumed run
    /// draws the dropout masks an uninterrupted one would. A checkpoint written before the state was saved leaves the
    /// generator as seeded.
    /// </summary>
    public static void LoadAdapter(string directory, LoraAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        adapter.LoadWeights(directory);
        string path = Path.Combine(directory, StateFolder, RngStateFile);
        if (!File.Exists(path)) return;
        using var file = SafeTensorsFile.Open(path);
        if (!file.Tensors.ContainsKey(LoraGeneratorKey))
            throw new InvalidDataException($"{path}: no '{LoraGeneratorKey}' tensor (the LoRA adapter's generator state).");
        using var scope = NewDisposeScope();
        adapter.Generator.set_state(file.Load(LoraGeneratorKey));
    }

    /// <summary>Reads the stage-specific state of a checkpoint (such as PPO's value model): <see cref="StateFolder"/>/extra.safetensors.</summary>
    public static Dictionary<string, Tensor> LoadExtra(string directory)
    {
        using var file = SafeTensorsFile.Open(StateFile(directory, ExtraFile));
        return file.Tensors.Keys.ToDictionary(k => k, k => file.Load(k).DetachFromDisposeScope());
    }

    /// <summary>A resume-state file of a checkpoint: in <see cref="StateFolder"/>, or beside the weights in a checkpoint written before it.</summary>
    private static string StateFile(string directory, string name)
    {
        string path = Path.Combine(directory, StateFolder, name);
        string legacy = Path.Combine(directory, name);
        return !File.Exists(path) && File.Exists(legacy) ? legacy : path;
    }

    /// <summary>The newest complete checkpoint-N folder under <paramref name="outputDirectory"/>, or null.</summary>
    public static string? Latest(string outputDirectory) =>
        !Directory.Exists(outputDirectory) ? null
        : Directory.EnumerateDirectories(outputDirectory, "checkpoint-*")
            .Where(d => !d.EndsWith(".partial", StringComparison.Ordinal) && File.Exists(Path.Combine(d, "trainer_state.json")))
            .OrderByDescending(d => long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out long n) ? n : -1)
            .FirstOrDefault();

    /// <summary>The data position after <paramref name="batches"/> more batches from <paramref name="from"/>.</summary>
    internal static DataPosition Advance(DataPosition from, int batchesPerEpoch, int batches)
    {
        int epoch = from.Epoch, batch = from.Batch + batches;
        while (batch >= batchesPerEpoch) { batch -= batchesPerEpoch; epoch++; }
        return new DataPosition(epoch, batch);
    }
}
