using System.Diagnostics;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Bench;

/// <summary>
/// Streams 1M <see cref="PreferenceRow"/>s (short texts, as in the demo task) through <see cref="ParquetArtifacts"/> on
/// the local store, both ways: rows/s and peak RSS for each, plus the file size. Memory should stay flat (row groups).
/// </summary>
public sealed class ArtifactsBench : IBenchmark
{
    private const int RowCount = 1_000_000;

    public string Name => "artifacts";

    public string Description => "ParquetArtifacts write and read of 1M PreferenceRow rows on the local store (rows/s, peak RSS)";

    public async Task<IReadOnlyList<BenchFigure>> RunAsync(CancellationToken cancellationToken = default)
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-bench-artifacts-").FullName;
        try
        {
            var store = new LocalArtifactStore(root);
            var figures = new List<BenchFigure>();
            GC.Collect();
            PeakMemory.ResetPeak();
            double baseline = PeakMemory.PeakRssMiB();
            figures.Add(new(Name, "before", "RSS", baseline, "MiB"));

            var sw = Stopwatch.StartNew();
            var info = await ParquetArtifacts.WriteAsync(store, "bench/pairs.parquet", Rows(cancellationToken), cancellationToken: cancellationToken).ConfigureAwait(false);
            double writeSeconds = sw.Elapsed.TotalSeconds;
            figures.Add(new(Name, "write 1M rows", "rows/s", info.Rows / writeSeconds, "rows/s"));
            figures.Add(new(Name, "write 1M rows", "peak RSS", PeakMemory.PeakRssMiB(), "MiB"));
            figures.Add(new(Name, "write 1M rows", "file size", new FileInfo(Path.Combine(root, "bench", "pairs.parquet")).Length / 1048576.0, "MiB"));

            GC.Collect();
            PeakMemory.ResetPeak();
            sw.Restart();
            long count = 0;
            double gapSum = 0;
            await foreach (var row in ParquetArtifacts.ReadAsync<PreferenceRow>(store, info.Path, cancellationToken).ConfigureAwait(false))
            {
                count++;
                gapSum += row.RewardGap;
            }
            double readSeconds = sw.Elapsed.TotalSeconds;
            if (count != RowCount) throw new InvalidOperationException($"read {count} rows, wrote {RowCount}");
            figures.Add(new(Name, "read 1M rows", "rows/s", count / readSeconds, "rows/s"));
            figures.Add(new(Name, "read 1M rows", "peak RSS", PeakMemory.PeakRssMiB(), "MiB"));
            figures.Add(new(Name, "read 1M rows", "checksum (sum of reward_gap)", gapSum, ""));
            return figures;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async IAsyncEnumerable<PreferenceRow> Rows([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (int i = 0; i < RowCount; i++)
        {
            if ((i & 0xFFFF) == 0) cancellationToken.ThrowIfCancellationRequested();
            yield return new PreferenceRow
            {
                PromptId = $"p-{i:D7}",
                Prompt = $"Write a positive review of the film number {i % 5000}:",
                Chosen = $"A wonderful, warm film; the cast shines in every scene ({i}).",
                Rejected = $"A dull film that never finds its story ({i}).",
                ScoreChosen = 1.0 + (i % 100) / 100.0,
                ScoreRejected = -(i % 37) / 37.0,
                RewardGap = 1.0 + (i % 100) / 100.0 + (i % 37) / 37.0,
                JudgeAgrees = (i & 1) == 0,
                Method = "ipr:reward",
                ChosenIndex = i % 4,
                RejectedIndex = (i + 1) % 4,
            };
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }
}
