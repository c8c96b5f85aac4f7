using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Runs;

/// <summary>One stage of a run as recorded in run.json: its state, key, counts, and the artifacts it read and wrote.</summary>
internal sealed record StageRecord
{
    [JsonPropertyName("name")] public PipelineStage Name { get; init; }
    [JsonPropertyName("status")] public StageStatus Status { get; set; } = StageStatus.Pending;
    [JsonPropertyName("key")] public string? Key { get; set; }

    /// <summary>The key with upstream artifacts named by content alone (not by their run's URIs): equal in two runs whose
    /// stage had the same options, inputs, models and code, so one run's outputs can stand for the other's.</summary>
    [JsonPropertyName("content_key")] public string? ContentKey { get; set; }

    /// <summary>The run whose outputs of this stage were copied in (same content key) instead of running it; null when it ran here.</summary>
    [JsonPropertyName("reused_from")] public string? ReusedFrom { get; set; }
    [JsonPropertyName("started")] public DateTimeOffset? Started { get; set; }
    [JsonPropertyName("finished")] public DateTimeOffset? Finished { get; set; }
    [JsonPropertyName("seconds")] public double Seconds { get; set; }
    [JsonPropertyName("rows_in")] public long RowsIn { get; set; }
    [JsonPropertyName("rows_out")] public long RowsOut { get; set; }
    [JsonPropertyName("rows_rejected")] public long RowsRejected { get; set; }

    /// <summary>How its rows in relate to its rows out and rejected (from the stage table).</summary>
    [JsonPropertyName("method")] public string? Method { get; set; }

    /// <summary>What it read when it last completed: upstream artifacts and the input files the pipeline names, with SHA-256.</summary>
    [JsonPropertyName("inputs")] public List<ArtifactRecord> Inputs { get; set; } = [];

    /// <summary>What it wrote (rejects included), with rows, SHA-256 and schema version.</summary>
    [JsonPropertyName("outputs")] public List<ArtifactRecord> Outputs { get; set; } = [];
    [JsonPropertyName("summary")] public Dictionary<string, double> Summary { get; set; } = [];
    [JsonPropertyName("error")] public string? Error { get; set; }

    /// <summary>rows in = rows out + rows rejected: nothing was lost.</summary>
    [JsonPropertyName("balanced")] public bool Balanced => RowsIn == RowsOut + RowsRejected;
}

/// <summary>An artifact in run.json; <paramref name="SchemaVersion"/> is its row type's (0 for models and input files).</summary>
internal sealed record ArtifactRecord(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("uri")] string Uri,
    [property: JsonPropertyName("rows")] long Rows,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("schema_version")] int SchemaVersion = 0)
{
    public static ArtifactRecord From(string name, ArtifactInfo info) => new(name, info.Uri, info.Rows, info.Sha256, info.SchemaVersion);

    /// <summary>A trained model folder, identified by the SHA-256 of its weights (so downstream keys see new weights) and
    /// located by its URI in a remote store, else its local folder.</summary>
    public static ArtifactRecord Of(string name, PrefPipe.Trainer.Stages.TrainedModel model) => new(name, model.Uri ?? model.Directory, 0, model.Sha256);
}

/// <summary>
/// run.json, next to the run's artifacts: the one record of a run. Its lineage (config hash, code version, every
/// stage's input and output artifacts with SHA-256 and schema version), its state (run and stage statuses, stage keys
/// for resume and caching), and per stage the counts that prove nothing was lost (rows in = rows out + rejected, and how
/// they correspond). Written atomically whenever a stage starts or ends; checked before every write.
/// </summary>
internal sealed record RunRecord
{
    /// <summary>This build's format (1: run.json and manifest.json before they were one file; read as 2).</summary>
    public const int CurrentFormat = 2;

    [JsonPropertyName("format_version")] public int FormatVersion { get; set; } = CurrentFormat;
    [JsonPropertyName("run_id")] public string RunId { get; init; } = "";
    [JsonPropertyName("pipeline")] public string Pipeline { get; init; } = "";
    [JsonPropertyName("config_hash")] public string ConfigHash { get; set; } = "";
    [JsonPropertyName("code_version")] public string CodeVersion { get; set; } = "";
    [JsonPropertyName("created")] public DateTimeOffset Created { get; init; }
    [JsonPropertyName("status")] public RunStatus Status { get; set; } = RunStatus.Running;

    /// <summary>The training plan (mpo, dpo, ppo, none): which artifacts feed which stage.</summary>
    [JsonPropertyName("plan")] public PrefPipe.Host.Pipelines.TrainingPlan Plan { get; set; }

    /// <summary>The folder the pipeline file was in: its relative paths resolve against it on resume and rerun.</summary>
    [JsonPropertyName("pipeline_dir")] public string? PipelineDirectory { get; set; }

    [JsonPropertyName("stages")] public List<StageRecord> Stages { get; init; } = [];

    public StageRecord Stage(PipelineStage name) => Stages.First(s => s.Name == name);

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string PathOf(string runId) => $"{ArtifactPath.ValidateName(runId, "run id")}/run.json";

    /// <summary>Checks, then writes run.json (replacing the previous one atomically).</summary>
    /// <exception cref="InvalidDataException">A SHA-256 is malformed or a completed stage's counts do not add up (names the stage).</exception>
    public async Task SaveAsync(IArtifactStore store, CancellationToken cancellationToken)
    {
        Check();
        await store.WriteBytesAsync(PathOf(RunId), JsonSerializer.SerializeToUtf8Bytes(this, Json), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Valid run id, well-formed SHA-256s, and balanced counts for completed stages.</summary>
    /// <exception cref="InvalidDataException">Names the run, the stage and what does not add up.</exception>
    public void Check()
    {
        ArtifactPath.ValidateName(RunId, "run id");
        foreach (var stage in Stages)
        {
            foreach (var artifact in stage.Inputs.Concat(stage.Outputs))
                if (artifact.Sha256.Length != 64 || !artifact.Sha256.All(char.IsAsciiHexDigitLower))
                    throw new InvalidDataException($"run {RunId}, stage {stage.Name.Name()}: artifact {artifact.Uri} has sha256 '{artifact.Sha256}'; expected 64 lower-case hex digits");
            if (stage.Status == StageStatus.Completed && !stage.Balanced)
                throw new InvalidDataException($"run {RunId}, stage {stage.Name.Name()}: rows_in {stage.RowsIn} != rows_out {stage.RowsOut} + rows_rejected {stage.RowsRejected} ({stage.Method}); rows were lost or duplicated");
        }
    }

    /// <summary>Reads run.json of <paramref name="runId"/>, or null when the run does not exist.</summary>
    /// <exception cref="InvalidDataException">Not a run record of this run, or of a newer format (named).</exception>
    public static async Task<RunRecord?> LoadAsync(IArtifactStore store, string runId, CancellationToken cancellationToken)
    {
        string path = PathOf(runId);
        if (!await store.ExistsAsync(path, cancellationToken).ConfigureAwait(false)) return null;
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        RunRecord? run;
        try
        {
            run = await JsonSerializer.DeserializeAsync<RunRecord>(stream, Json, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{store.UriOf(path)} is not a valid run record: {ex.Message}", ex);
        }
        if (run is null || run.RunId != runId)
            throw new InvalidDataException($"{store.UriOf(path)}: run_id is '{run?.RunId}'; expected '{runId}'");
        if (run.FormatVersion > CurrentFormat)
            throw new InvalidDataException($"{store.UriOf(path)}: format_version {run.FormatVersion}; this build reads up to version {CurrentFormat}");
        run.FormatVersion = CurrentFormat;
        return run;
    }
}
