using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Host.Runs;

/// <summary>The stages in run order, as the stage table lists them.</summary>
internal static class Stages
{
    public static IReadOnlyList<PipelineStage> All { get; } = [.. StageTable.All.Select(s => s.Name)];
}

/// <summary>What a stage reads: an artifact of an earlier stage of the run, an input file, or a model folder.</summary>
internal abstract record StageInput
{
    /// <summary>An output of an earlier stage (its URI and SHA-256 are in run.json).</summary>
    public sealed record Upstream(PipelineStage Stage, string Artifact) : StageInput;

    /// <summary>A file named by the pipeline (local, or a blob URI): its content hash when local.</summary>
    public sealed record File(string Location) : StageInput;

    /// <summary>A model folder named by the pipeline: its files' names, sizes and times.</summary>
    public sealed record Model(string Directory) : StageInput;
}

/// <summary>One row of the stage table.</summary>
/// <param name="Name">The stage's name.</param>
/// <param name="Accounting">How its rows in relate to its rows out and rejected (the manifest says it).</param>
/// <param name="Enabled">Whether the pipeline's plan runs it.</param>
/// <param name="Inputs">What it reads (decides its key and its manifest inputs).</param>
/// <param name="Options">Its options (serialized into its key).</param>
/// <param name="Run">The unit call: artifacts in, artifacts out.</param>
/// <param name="Clear">Removes what an attempt under another key left (checkpoints), or null.</param>
/// <param name="Reusable">Whether its outputs are store artifacts alone (no model, no work folder), so another run's
/// outputs under the same content key can be copied in instead of running it (studies share ingest, rank and split).</param>
internal sealed record StageDescriptor(
    PipelineStage Name,
    string Accounting,
    Func<PipelineDefinition, bool> Enabled,
    Func<LoadedPipeline, IReadOnlyList<StageInput>> Inputs,
    Func<PipelineDefinition, object> Options,
    Func<StageContext, CancellationToken, Task<StageOutcome>> Run,
    Func<StageContext, CancellationToken, Task>? Clear = null,
    bool Reusable = false);

/// <summary>
/// The pipeline as a table: each stage's inputs, options and unit. Keys, lineage and the manifest's inputs are derived
/// from it: a stage's key covers its options, the content of its inputs and models, and the code version, so a changed
/// input or option reruns it and every stage downstream of it (their inputs' hashes change in turn).
/// </summary>
internal static class StageTable
{
    /// <summary>The stage whose model evaluation compares with the start.</summary>
    public static PipelineStage FinalModelStage(PipelineDefinition d) => d.Training.RunsPpo ? PipelineStage.Ppo : PipelineStage.Dpo;

    public static readonly IReadOnlyList<StageDescriptor> All =
    [
        new(PipelineStage.Ingest, "input rows = prompts accepted (each with K candidates) + rows rejected (ingest/rejects)",
            _ => true,
            p => [new StageInput.File(p.Resolve(p.Definition.Inputs.Prompts)), new StageInput.Model(p.Resolve(p.Definition.Models.Policy))],
            d => d.Ingest, StageUnits.IngestAsync, Reusable: true),
        new(PipelineStage.Rank, "prompts = preference pairs (one per prompt) + prompts unpaired (rank/unpaired)",
            _ => true,
            p => [new StageInput.Upstream(PipelineStage.Ingest, "candidates"), new StageInput.Model(p.Resolve(p.Definition.Models.Reward))],
            d => d.Ranking, StageUnits.RankAsync, Reusable: true),
        new(PipelineStage.Split, "pairs = easy + difficult + dropped (split/dropped)",
            _ => true,
            _ => [new StageInput.Upstream(PipelineStage.Rank, "preferences")],
            d => d.Split, StageUnits.SplitAsync, Reusable: true),
        new(PipelineStage.Dpo, "pairs = pairs trained on + pairs rejected (dpo/rejects)",
            d => d.Training.RunsDpo,
            p => [p.Definition.Training.Plan == TrainingPlan.Dpo ? new StageInput.Upstream(PipelineStage.Rank, "preferences") : new StageInput.Upstream(PipelineStage.Split, "easy"),
                  new StageInput.Model(p.Resolve(p.Definition.Models.Policy)), new StageInput.Model(StageUnits.Reference(p))],
            d => new { d.Training.Plan, d.Training.Dpo, Prompts = StageUnits.Format(d) }, StageUnits.DpoAsync,
            (c, ct) => DpoStage.ClearAsync(c.Store, c.Prefix(PipelineStage.Dpo), c.Work(PipelineStage.Dpo), ct)),
        new(PipelineStage.Ppo, "prompts = prompts used for rollouts + rows rejected (ppo/rejects)",
            d => d.Training.RunsPpo,
            p => p.Definition.Training.Plan == TrainingPlan.Ppo
                ? [new StageInput.Upstream(PipelineStage.Ingest, "prompts"), new StageInput.Model(p.Resolve(p.Definition.Models.Policy)), new StageInput.Model(p.Resolve(p.Definition.Models.Reward))]
                : [new StageInput.Upstream(PipelineStage.Split, "difficult"), new StageInput.Upstream(PipelineStage.Dpo, "model"), new StageInput.Model(p.Resolve(p.Definition.Models.Policy)), new StageInput.Model(p.Resolve(p.Definition.Models.Reward))],
            d => new { d.Training.Plan, d.Training.Ppo, Prompts = StageUnits.Format(d) }, StageUnits.PpoAsync,
            (c, ct) => PpoStage.ClearAsync(c.Store, c.Prefix(PipelineStage.Ppo), c.Work(PipelineStage.Ppo), ct)),
        new(PipelineStage.Evaluate, "held-out rows = prompts sampled and scored + rows rejected (evaluate/rejects)",
            d => d.Inputs.EvalPrompts is not null && d.Training.Plan != TrainingPlan.None,
            p => [new StageInput.File(p.Resolve(p.Definition.Inputs.EvalPrompts ?? "")), new StageInput.Upstream(FinalModelStage(p.Definition), "model"),
                  new StageInput.Model(p.Resolve(p.Definition.Models.Policy)), new StageInput.Model(p.Resolve(p.Definition.Models.Reward))],
            d => new { d.Evaluation, Prompts = StageUnits.Format(d) }, StageUnits.EvaluateAsync),
    ];

    public static StageDescriptor Of(PipelineStage stage) => All.First(s => s.Name == stage);

    /// <summary>The run.json key of <paramref name="stage"/> for this pipeline and the run's upstream outputs.</summary>
    /// <param name="pipeline">The pipeline (the stage's options and inputs).</param>
    /// <param name="run">The run (its upstream outputs).</param>
    /// <param name="stage">The stage.</param>
    /// <param name="portable">Name model folders by their content (every weight byte) instead of their files' times, so
    /// the key is the same on every machine (shard workers name their shared folders with it).</param>
    /// <param name="byContent">Name upstream artifacts by their SHA-256 alone, not by their URIs in this run: the content
    /// key, equal across runs (see <see cref="StageRecord.ContentKey"/>).</param>
    public static string Key(LoadedPipeline pipeline, RunRecord run, PipelineStage stage, bool portable = false, bool byContent = false)
    {
        var d = Of(stage);
        var parts = new List<string> { Json(d.Options(pipeline.Definition)) };
        parts.AddRange(d.Inputs(pipeline).Select(i => i switch
        {
            StageInput.Upstream u when byContent => run.Stage(u.Stage).Outputs.FirstOrDefault(o => o.Name == u.Artifact)?.Sha256 ?? "",
            StageInput.Upstream u => Output(run, u.Stage, u.Artifact),
            StageInput.File f => LocalFileSha256(f.Location) ?? f.Location,
            StageInput.Model m => portable ? TrainedModel.Fingerprint(m.Directory) : DirHash(m.Directory),
            _ => throw new InvalidOperationException($"unknown input {i}"),
        }));
        parts.Add(CodeVersion.Current);
        return Hash(string.Join('\u001f', parts));
    }

    /// <summary>
    /// What <paramref name="stage"/> read, as run.json records it: the upstream artifacts the plan feeds it (from the run's
    /// record) and the local input files the pipeline names, with their SHA-256 (hashed once per size and time stamp;
    /// blob inputs are not hashed and not listed). Model folders are part of the stage's key, not of this list.
    /// </summary>
    public static List<ArtifactRecord> InputRecords(LoadedPipeline pipeline, RunRecord run, PipelineStage stage) =>
        [.. Of(stage).Inputs(pipeline).Select(i => i switch
        {
            StageInput.Upstream u => run.Stage(u.Stage).Outputs.FirstOrDefault(o => o.Name == u.Artifact),
            StageInput.File f => LocalFile(f.Location),
            _ => null,
        }).OfType<ArtifactRecord>()];

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, long, DateTime), string> FileHashes = new();

    private static ArtifactRecord? LocalFile(string path) =>
        LocalFileSha256(path) is { } sha ? new ArtifactRecord("input", Path.GetFullPath(path), 0, sha) : null;

    /// <summary>The SHA-256 of a local file, streamed and computed once per path, size and time stamp (a key and the run
    /// record both need it, at every stage start); null for a blob URI or a missing file.</summary>
    private static string? LocalFileSha256(string path)
    {
        if (!System.IO.File.Exists(path)) return null;
        var info = new FileInfo(path);
        return FileHashes.GetOrAdd((info.FullName, info.Length, info.LastWriteTimeUtc), _ =>
        {
            using var stream = System.IO.File.OpenRead(path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        });
    }

    internal static string Output(RunRecord run, PipelineStage stage, string name) =>
        run.Stage(stage).Outputs.FirstOrDefault(o => o.Name == name) is { } o ? $"{o.Uri}:{o.Sha256}" : "";

    internal static string Json(object value) => JsonSerializer.Serialize(value);

    internal static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    internal static string DirHash(string dir) => string.Join(",", Directory.Exists(dir)
        ? Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal).Select(f => $"{Path.GetFileName(f)}:{new FileInfo(f).Length}:{System.IO.File.GetLastWriteTimeUtc(f).Ticks}")
        : [dir]);
}

/// <summary>The code version (assembly informational version): part of every stage key.</summary>
internal static class CodeVersion
{
    public static readonly string Current =
        typeof(CodeVersion).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
}
