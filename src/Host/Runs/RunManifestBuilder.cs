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

    public static RunManifest Build(RunRecord run)
    {
        IEnumerable<ManifestArtifact> Inputs(StageRecord stage) =>
            stage.Inputs.Select(External).OfType<ArtifactRecord>().Concat(StageTable.UpstreamInputs(run, stage.Name)).Select(ToManifest);

        return new RunManifest
        {
            RunId = run.RunId, ConfigHash = run.ConfigHash, CodeVersion = run.CodeVersion, Created = run.Created,
            Stages = [.. run.Stages.Select(s => new M.StageRecord
            {
                Name = s.Name.Name(),
                Status = s.Status == StageStatus.Completed ? "succeeded" : s.Status.Name(),
                Started = s.Started, Finished = s.Finished, Error = s.Error,
                Inputs = s.Status == StageStatus.Completed ? [.. Inputs(s)] : [],
                Outputs = [.. s.Outputs.Select(ToManifest)],
                Counts = s.Status == StageStatus.Completed ? new RowAccounting { RowsIn = s.RowsIn, RowsOut = s.RowsOut, RowsRejected = s.RowsRejected, Method = StageTable.Of(s.Name).Accounting } : null,
            })],
        };
    }

    private static ManifestArtifact ToManifest(ArtifactRecord a) =>
        new() { Uri = a.Uri, Rows = a.Rows, Sha256 = a.Sha256, SchemaVersion = a.SchemaVersion };

    /// <summary>A local input file with its SHA-256 (hashed once per size and time stamp); blob inputs are named by their URI.</summary>
    private static ArtifactRecord? External(string path)
    {
        if (!File.Exists(path)) return null;
        var info = new FileInfo(path);
        string sha = FileHashes.GetOrAdd((info.FullName, info.Length, info.LastWriteTimeUtc), _ =>
        {
            using var stream = File.OpenRead(path);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        });
        return new ArtifactRecord("input", info.FullName, 0, sha);
    }
}
