using System.Collections.Concurrent;
using System.Security.Cryptography;
using PrefPipe.Artifacts.Manifests;
using M = PrefPipe.Artifacts.Manifests;

namespace PrefPipe.Host.Runs;

/// <summary>
/// Builds the run manifest (<c>{run}/manifest.json</c>, the artifacts layer's format) from run.json: per stage its inputs
/// (the upstream artifacts the plan feeds it, and the local input files), outputs with row counts, SHA-256 and schema
/// version, and the row accounting with the method that relates rows in to rows out.
/// </summary>
internal static class RunManifestBuilder
{
    private static readonly ConcurrentDictionary<(string, long, DateTime), string> FileHashes = new();

    /// <summary>How each stage's rows in relate to its rows out and rejected.</summary>
    private static readonly Dictionary<string, string> Methods = new()
    {
        [Stages.Ingest] = "input rows = prompts accepted (each with K candidates) + rows rejected (ingest/rejects)",
        [Stages.Rank] = "prompts = preference pairs (one per prompt) + prompts unpaired (rank/unpaired)",
        [Stages.Split] = "pairs = easy + difficult + dropped (split/dropped)",
        [Stages.Train] = "pairs = pairs trained on + pairs rejected by length (train/rejects)",
        [Stages.Ppo] = "prompts = prompts used for rollouts",
        [Stages.Evaluate] = "held-out prompts = prompts sampled and scored",
    };

    public static RunManifest Build(RunRecord run, string? promptsFile, string? evalPromptsFile)
    {
        string plan = run.Plan ?? "mpo";
        ArtifactRecord? Out(string stage, string name) => run.Stage(stage).Outputs.FirstOrDefault(o => o.Name == name);
        IEnumerable<ManifestArtifact> Inputs(string stage) => (stage switch
        {
            Stages.Ingest => [External(promptsFile)],
            Stages.Rank => [Out(Stages.Ingest, "candidates")],
            Stages.Split => [Out(Stages.Rank, "preferences")],
            Stages.Train => [plan == "dpo" ? Out(Stages.Rank, "preferences") : Out(Stages.Split, "easy")],
            Stages.Ppo => [plan == "ppo" ? Out(Stages.Ingest, "prompts") : Out(Stages.Split, "difficult"), plan == "ppo" ? null : Out(Stages.Train, "model")],
            Stages.Evaluate => [External(evalPromptsFile), Out(plan is "mpo" or "ppo" ? Stages.Ppo : Stages.Train, "model")],
            _ => Array.Empty<ArtifactRecord?>(),
        }).OfType<ArtifactRecord>().Select(ToManifest);

        return new RunManifest
        {
            RunId = run.RunId, ConfigHash = run.ConfigHash, CodeVersion = run.CodeVersion, Created = run.Created,
            Stages = [.. run.Stages.Select(s => new M.StageRecord
            {
                Name = s.Name,
                Status = s.Status == "completed" ? "succeeded" : s.Status,
                Started = s.Started, Finished = s.Finished, Error = s.Error,
                Inputs = s.Status == "completed" ? [.. Inputs(s.Name)] : [],
                Outputs = [.. s.Outputs.Select(ToManifest)],
                Counts = s.Status == "completed" ? new RowAccounting { RowsIn = s.RowsIn, RowsOut = s.RowsOut, RowsRejected = s.RowsRejected, Method = Methods[s.Name] } : null,
            })],
        };
    }

    private static ManifestArtifact ToManifest(ArtifactRecord a) =>
        new() { Uri = a.Uri, Rows = a.Rows, Sha256 = a.Sha256, SchemaVersion = a.SchemaVersion };

    /// <summary>A local input file with its SHA-256 (hashed once per size and time stamp); blob inputs are named by their URI.</summary>
    private static ArtifactRecord? External(string? path)
    {
        if (path is null || !File.Exists(path)) return null;
        var info = new FileInfo(path);
        string sha = FileHashes.GetOrAdd((info.FullName, info.Length, info.LastWriteTimeUtc), _ =>
        {
            using var stream = File.OpenRead(path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        });
        return new ArtifactRecord("input", info.FullName, 0, sha);
    }
}
