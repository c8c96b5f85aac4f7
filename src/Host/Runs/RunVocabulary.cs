using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrefPipe.Host.Runs;

/// <summary>
/// The pipeline's stages in run order. One vocabulary for the CLI (<c>--from dpo</c>), run.json, artifact folders
/// (<c>RUN/dpo/…</c>), the pipeline file (<c>training.dpo</c>) and logs: each stage is named by what it does.
/// </summary>
[JsonConverter(typeof(PipelineStageJsonConverter))]
internal enum PipelineStage
{
    /// <summary>Prompts → validated prompts → K candidates each.</summary>
    Ingest,

    /// <summary>Candidates → reward scores → IPR ranking → preference pairs.</summary>
    Rank,

    /// <summary>Pairs → easy / difficult by reward gap.</summary>
    Split,

    /// <summary>A DPO-family objective (DPO, IPO, MIPO, MallowsPO, BCR) on preference pairs.</summary>
    Dpo,

    /// <summary>PPO against the reward model.</summary>
    Ppo,

    /// <summary>The final policy against the start on held-out prompts.</summary>
    Evaluate,
}

/// <summary>A stage's state in run.json.</summary>
[JsonConverter(typeof(LowerCaseEnumConverter<StageStatus>))]
internal enum StageStatus
{
    /// <summary>Not run yet.</summary>
    Pending,

    /// <summary>Running now, or stopped while running (a crash).</summary>
    Running,

    /// <summary>Done; its outputs are recorded.</summary>
    Completed,

    /// <summary>Stopped by an error (recorded).</summary>
    Failed,

    /// <summary>Stopped by cancellation.</summary>
    Cancelled,

    /// <summary>Not part of this run (outside --from/--until, or not in the plan).</summary>
    Skipped,
}

/// <summary>A run's state in run.json.</summary>
[JsonConverter(typeof(LowerCaseEnumConverter<RunStatus>))]
internal enum RunStatus
{
    /// <summary>Created by a shard worker; no runner has started it.</summary>
    Created,

    /// <summary>Running now, or stopped while running (a crash).</summary>
    Running,

    /// <summary>Every selected stage completed.</summary>
    Completed,

    /// <summary>A stage failed.</summary>
    Failed,

    /// <summary>Cancelled.</summary>
    Cancelled,
}

/// <summary>Names as run.json, the CLI and folders spell them.</summary>
internal static class RunVocabulary
{
    /// <summary>The stage's name: ingest, rank, split, dpo, ppo, evaluate.</summary>
    public static string Name(this PipelineStage stage) => stage.ToString().ToLowerInvariant();

    /// <summary>The status's name: pending, running, completed, failed, cancelled, skipped.</summary>
    public static string Name(this StageStatus status) => status.ToString().ToLowerInvariant();

    /// <summary>The run status's name.</summary>
    public static string Name(this RunStatus status) => status.ToString().ToLowerInvariant();

    /// <summary>Every stage name, in run order, for messages.</summary>
    public static string AllStageNames => string.Join(", ", Enum.GetValues<PipelineStage>().Select(Name));

    /// <summary>Parses a stage name (case-insensitive).</summary>
    /// <exception cref="ArgumentException">Not a stage; names the known ones.</exception>
    public static PipelineStage ParseStage(string name) =>
        TryParseStage(name, out var stage) ? stage : throw new ArgumentException($"stage '{name}' is not known; expected one of {AllStageNames}");

    /// <summary>Parses a stage name (case-insensitive).</summary>
    public static bool TryParseStage(string? name, out PipelineStage stage)
    {
        stage = default;
        if (string.IsNullOrWhiteSpace(name) || name.Any(char.IsDigit)) return false;
        return Enum.TryParse(name, ignoreCase: true, out stage) && Enum.IsDefined(stage);
    }
}

/// <summary>Writes stages by name (<c>dpo</c>); reads names, and <c>train</c> from older run.json files as <c>dpo</c>.</summary>
internal sealed class PipelineStageJsonConverter : JsonConverter<PipelineStage>
{
    public override PipelineStage Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? name = reader.GetString();
        // "train": the dpo stage's name in run.json files written before the stages were named by what they do.
        if (name == "train") return PipelineStage.Dpo;
        return RunVocabulary.TryParseStage(name, out var stage) ? stage : throw new JsonException($"'{name}' is not a stage; expected one of {RunVocabulary.AllStageNames}");
    }

    public override void Write(Utf8JsonWriter writer, PipelineStage value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name());
}

/// <summary>Enums in run.json as lower-case names (<c>completed</c>).</summary>
internal sealed class LowerCaseEnumConverter<T>() : JsonStringEnumConverter<T>(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) where T : struct, Enum;
