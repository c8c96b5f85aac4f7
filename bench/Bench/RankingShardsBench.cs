using System.Diagnostics;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Ingest;
using PrefPipe.Models.Reward;
using PrefPipe.Ranking;

namespace PrefPipe.Bench;

/// <summary>
/// Throughput of the sharded rank stage with 1 and 2 concurrent workers on this machine: candidates for the 240 demo
/// prompts (K = 8, 48 new tokens) are generated once and copied ten times under new prompt ids (2,400 prompts,
/// 19,200 candidates), then split into 8 shards (SHA-256 of prompt_id mod 8) that the
/// workers share (worker w takes shards w, w + W, …; each shard loads its own reward-model session as a worker process
/// does), and the parts are merged. Each figure is the median of three runs. Two reward-model threading setups: ONNX Runtime's default (intra-op threads = cores)
/// and one intra-op thread per worker. Also reports single-worker generation throughput, for the ingest stage.
/// </summary>
public sealed class RankingShardsBench : IBenchmark
{
    private const int Shards = 8;
    private const int Copies = 10;
    private const string Candidates = "b/ingest/candidates-x10.parquet";

    public string Name => "ranking-shards";

    public string Description => "sharded rank stage: prompts/s with 1 and 2 workers (8 shards of 2,400 prompts × 8 candidates), merge time";

    public async Task<IReadOnlyList<BenchFigure>> RunAsync(CancellationToken cancellationToken = default)
    {
        string demo = FindDemo();
        string root = Directory.CreateTempSubdirectory("prefpipe-bench-shards-").FullName;
        try
        {
            var store = new LocalArtifactStore(root);
            var figures = new List<BenchFigure>();
            var clock = Stopwatch.StartNew();
            var ingest = await new IngestStage(new IngestOptions { CandidatesPerPrompt = 8, MaxNewTokens = 48, BatchSize = 16, Seed = 1234, Deduplicate = false })
                .RunAsync(PromptSource.ReadAsync(Path.Combine(demo, "prompts.jsonl"), cancellationToken: cancellationToken), "prompts.jsonl", Path.Combine(demo, "policy"), store, "b/ingest", cancellationToken: cancellationToken).ConfigureAwait(false);
            double genSeconds = clock.Elapsed.TotalSeconds;
            figures.Add(new(Name, "ingest, 1 worker", "prompts/s", ingest.Prompts.Rows / genSeconds, "prompts/s"));
            figures.Add(new(Name, "ingest, 1 worker", "candidates/s", ingest.Candidates.Rows / genSeconds, "candidates/s"));
            string reward = Path.Combine(demo, "reward");
            // Ten copies of every prompt's candidates under new prompt ids: enough work that per-shard start-up is not all we time.
            var generated = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "b/ingest/candidates.parquet", cancellationToken).ConfigureAwait(false);
            var copies = Enumerable.Range(0, Copies).SelectMany(r => generated.Select(c => c with { PromptId = $"{c.PromptId}-{r}" })).ToList();
            await ParquetArtifacts.WriteAsync(store, Candidates, copies, cancellationToken: cancellationToken).ConfigureAwait(false);
            long prompts = ingest.Prompts.Rows * Copies, candidates = copies.Count;

            // Warm-up (JIT, page cache), not reported.
            await RankAsync(store, reward, "warm", 1, 0, cancellationToken).ConfigureAwait(false);
            foreach (int threads in new[] { 0, 1 })
            {
                foreach (int workers in new[] { 1, 2 })
                {
                    string label = $"rank, {workers} worker{(workers > 1 ? "s" : "")}, {(threads == 0 ? "ORT default threads" : "1 ORT thread each")}";
                    // Median of three: the machine's cores are shared, single runs are noisy.
                    var runs = new List<double>();
                    for (int r = 0; r < 3; r++) runs.Add(await RankAsync(store, reward, $"t{threads}w{workers}r{r}", workers, threads, cancellationToken).ConfigureAwait(false));
                    double seconds = runs.Order().ElementAt(1);
                    figures.Add(new(Name, label, "prompts/s", prompts / seconds, "prompts/s"));
                    figures.Add(new(Name, label, "candidates/s", candidates / seconds, "candidates/s"));
                }
            }
            clock.Restart();
            await new RankingStage(new RankingOptions()).MergeShardsAsync(store, Candidates, reward, s => s.Folder("t0w1r0"), Shards, "b/rank", cancellationToken).ConfigureAwait(false);
            figures.Add(new(Name, $"merge {Shards} shards", "seconds", clock.Elapsed.TotalSeconds, "s"));
            figures.Add(new(Name, "cores", "Environment.ProcessorCount", Environment.ProcessorCount, "cores"));
            return figures;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<double> RankAsync(IArtifactStore store, string reward, string root, int workers, int threads, CancellationToken cancellationToken)
    {
        var options = new RankingOptions { Reward = new RewardModelOptions { IntraOpThreads = threads } };
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            for (int i = w; i < Shards; i += workers)
                await new RankingStage(options).RunShardAsync(store, Candidates, reward, new Shard(i, Shards).Folder(root), new Shard(i, Shards), cancellationToken: cancellationToken).ConfigureAwait(false);
        }, cancellationToken))).ConfigureAwait(false);
        return clock.Elapsed.TotalSeconds;
    }

    private static string FindDemo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "assets", "demo");
            if (File.Exists(Path.Combine(candidate, "prompts.jsonl"))) return candidate;
        }
        string fromCwd = Path.GetFullPath(Path.Combine("assets", "demo"));
        return File.Exists(Path.Combine(fromCwd, "prompts.jsonl")) ? fromCwd : throw new DirectoryNotFoundException("assets/demo: run the benchmark from the repository.");
    }
}
