using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Manifests;

/// <summary>One input or output artifact of a stage.</summary>
public sealed record ManifestArtifact
{
    /// <summary>Full URI or path (never with a SAS).</summary>
    [JsonPropertyName("uri")] public string Uri { get; init; } = "";

    /// <summary>Row count.</summary>
    [JsonPropertyName("rows")] public long Rows { get; init; }

    /// <summary>Lower-case hex SHA-256 of the file.</summary>
    [JsonPropertyName("sha256")] public string Sha256 { get; init; } = "";

    /// <summary>Schema version of the artifact kind: the row type's SchemaVersion; 0 for external inputs and models (not row artifacts).</summary>
    [JsonPropertyName("schema_version")] public int SchemaVersion { get; init; }

    /// <summary>From what was written.</summary>
    public static ManifestArtifact From(ArtifactInfo info, int schemaVersion) =>
        new() { Uri = info.Uri, Rows = info.Rows, Sha256 = info.Sha256, SchemaVersion = schemaVersion };
}

/// <summary>The counts that prove a stage lost nothing: rows in = rows out + rows rejected.</summary>
public sealed record RowAccounting
{
    /// <summary>Rows the stage read (units of <see cref="Method"/>).</summary>
    [JsonPropertyName("rows_in")] public long RowsIn { get; init; }

    /// <summary>Rows the stage wrote.</summary>
    [JsonPropertyName("rows_out")] public long RowsOut { get; init; }

    /// <summary>Rows written to the rejects artifact.</summary>
    [JsonPropertyName("rows_rejected")] public long RowsRejected { get; init; }

    /// <summary>
    /// How in and out correspond, e.g. "one-to-one" (each input row ends in one output or one reject) or
    /// "per-prompt: 4 candidates each" (a stage that fans out counts prompts, not rows). Required.
    /// </summary>
    [JsonPropertyName("method")] public string Method { get; init; } = "";

    /// <summary>Whether <c>rows_in == rows_out + rows_rejected</c>.</summary>
    [JsonIgnore] public bool Balanced => RowsIn == RowsOut + RowsRejected;
}

/// <summary>One stage of a run.</summary>
public sealed record StageRecord
{
    /// <summary>Stage name (ingest, ranking, splitter, trainer).</summary>
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    /// <summary>pending, running, succeeded, failed or skipped.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "pending";

    /// <summary>UTC start time.</summary>
    [JsonPropertyName("started")] public DateTimeOffset? Started { get; init; }

    /// <summary>UTC end time.</summary>
    [JsonPropertyName("finished")] public DateTimeOffset? Finished { get; init; }

    /// <summary>Artifacts read.</summary>
    [JsonPropertyName("inputs")] public IReadOnlyList<ManifestArtifact> Inputs { get; init; } = [];

    /// <summary>Artifacts written (rejects included).</summary>
    [JsonPropertyName("outputs")] public IReadOnlyList<ManifestArtifact> Outputs { get; init; } = [];

    /// <summary>The row accounting, or null for stages that do not transform rows (training).</summary>
    [JsonPropertyName("counts")] public RowAccounting? Counts { get; init; }

    /// <summary>The error when the stage failed.</summary>
    [JsonPropertyName("error")] public string? Error { get; init; }
}

/// <summary>
/// The run manifest, <c>RUN_ID/manifest.json</c> next to the run's artifacts: what produced which artifact (config
/// hash, code version), each artifact's URI, rows, SHA-256 and schema version, and per stage the counts proving
/// nothing was lost.
/// </summary>
public sealed record RunManifest
{
    /// <summary>Version of this manifest format.</summary>
    public const int FormatVersion = 1;

    /// <summary>File name inside the run folder.</summary>
    public const string FileName = "manifest.json";

    /// <summary>Manifest format version.</summary>
    [JsonPropertyName("format_version")] public int Format { get; init; } = FormatVersion;

    /// <summary>Run id (validated with <see cref="ArtifactPath.ValidateName"/>).</summary>
    [JsonPropertyName("run_id")] public string RunId { get; init; } = "";

    /// <summary>SHA-256 of the pipeline definition and configuration.</summary>
    [JsonPropertyName("config_hash")] public string ConfigHash { get; init; } = "";

    /// <summary>Code version (assembly informational version, e.g. 1.0.0+commit).</summary>
    [JsonPropertyName("code_version")] public string CodeVersion { get; init; } = "";

    /// <summary>UTC creation time.</summary>
    [JsonPropertyName("created")] public DateTimeOffset Created { get; init; }

    /// <summary>Stages in run order.</summary>
    [JsonPropertyName("stages")] public IReadOnlyList<StageRecord> Stages { get; init; } = [];
}

/// <summary>Writes and reads run manifests through an artifact store, atomically.</summary>
public static class RunManifests
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The manifest's path for <paramref name="runId"/>: <c>RUN_ID/manifest.json</c>, next to the run's artifacts.</summary>
    /// <exception cref="ArgumentException">The run id is not a safe name.</exception>
    public static string PathOf(string runId) => $"{ArtifactPath.ValidateName(runId, "run id")}/{RunManifest.FileName}";

    /// <summary>Checks the manifest before writing: valid run id, SHA-256s and balanced counts.</summary>
    /// <exception cref="InvalidDataException">Names the stage and what does not add up.</exception>
    public static void Check(RunManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArtifactPath.ValidateName(manifest.RunId, "run id");
        foreach (var stage in manifest.Stages)
        {
            foreach (var artifact in stage.Inputs.Concat(stage.Outputs))
                if (artifact.Sha256.Length != 64 || !artifact.Sha256.All(char.IsAsciiHexDigitLower))
                    throw new InvalidDataException($"run {manifest.RunId}, stage {stage.Name}: artifact {artifact.Uri} has sha256 '{artifact.Sha256}'; expected 64 lower-case hex digits");
            if (stage.Counts is { } c)
            {
                if (string.IsNullOrWhiteSpace(c.Method))
                    throw new InvalidDataException($"run {manifest.RunId}, stage {stage.Name}: counts have no method; say how rows in and out correspond");
                if (stage.Status == "succeeded" && !c.Balanced)
                    throw new InvalidDataException($"run {manifest.RunId}, stage {stage.Name}: rows_in {c.RowsIn} != rows_out {c.RowsOut} + rows_rejected {c.RowsRejected} ({c.Method}); rows were lost or duplicated");
            }
        }
    }

    /// <summary>Checks and writes the manifest (replacing the previous one atomically); returns its path.</summary>
    public static async Task<string> WriteAsync(IArtifactStore store, RunManifest manifest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        Check(manifest);
        string path = PathOf(manifest.RunId);
        await store.WriteBytesAsync(path, JsonSerializer.SerializeToUtf8Bytes(manifest, Json), cancellationToken).ConfigureAwait(false);
        return path;
    }

    /// <summary>Reads the manifest of <paramref name="runId"/>.</summary>
    /// <exception cref="FileNotFoundException">The run has no manifest.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid manifest (named).</exception>
    public static async Task<RunManifest> ReadAsync(IArtifactStore store, string runId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        string path = PathOf(runId);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        RunManifest? manifest;
        try
        {
            manifest = await JsonSerializer.DeserializeAsync<RunManifest>(stream, Json, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{store.UriOf(path)} is not a valid run manifest: {ex.Message}", ex);
        }
        if (manifest is null || manifest.RunId != runId)
            throw new InvalidDataException($"{store.UriOf(path)}: run_id is '{manifest?.RunId}'; expected '{runId}'");
        if (manifest.Format != RunManifest.FormatVersion)
            throw new InvalidDataException($"{store.UriOf(path)}: format_version {manifest.Format}; this build reads version {RunManifest.FormatVersion}");
        return manifest;
    }
}
