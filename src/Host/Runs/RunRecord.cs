using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Runs;

/// <summary>One stage of a run as recorded in run.json.</summary>
internal sealed record StageRecord
{
    [JsonPropertyName("name")] public PipelineStage Name { get; init; }
    [JsonPropertyName("status")] public StageStatus Status { get; set; } = StageStatus.Pending;
    [JsonPropertyName("key")] public string? Key { get; set; }
    [JsonPropertyName("started")] public DateTimeOffset? Started { get; set; }
    [JsonPropertyName("finished")] public DateTimeOffset? Finished { get; set; }
    [JsonPropertyName("seconds")] public double Seconds { get; set; }
    [JsonPropertyName("rows_in")] public long RowsIn { get; set; }
    [JsonPropertyName("rows_out")] public long RowsOut { get; set; }
    [JsonPropertyName("rows_rejected")] public long RowsRejected { get; set; }
    [JsonPropertyName("outputs")] public List<ArtifactRecord> Outputs { get; set; } = [];

    /// <summary>The files the pipeline named that the stage read (prompts, held-out prompts); upstream artifacts follow from the stage table.</summary>
    [JsonPropertyName("input_files")] public List<string> Inputs { get; set; } = [];
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

/// <summary>run.json: the run's lineage and state, next to its artifacts.</summary>
internal sealed record RunRecord
{
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

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string PathOf(string runId) => $"{runId}/run.json";

    public async Task SaveAsync(IArtifactStore store, CancellationToken cancellationToken)
    {
        await store.WriteBytesAsync(PathOf(RunId), JsonSerializer.SerializeToUtf8Bytes(this, Json), cancellationToken).ConfigureAwait(false);
        await PrefPipe.Artifacts.Manifests.RunManifests.WriteAsync(store, RunManifestBuilder.Build(this), cancellationToken).ConfigureAwait(false);
    }

    public static async Task<RunRecord?> LoadAsync(IArtifactStore store, string runId, CancellationToken cancellationToken)
    {
        string path = PathOf(ArtifactPath.ValidateName(runId, "run id"));
        if (!await store.ExistsAsync(path, cancellationToken).ConfigureAwait(false)) return null;
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        return await JsonSerializer.DeserializeAsync<RunRecord>(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
    }
}
