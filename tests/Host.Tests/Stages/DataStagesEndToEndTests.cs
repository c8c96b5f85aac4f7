using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Ingest;
using PrefPipe.Ranking;
using PrefPipe.Splitter;

namespace PrefPipe.Host.Tests.Stages;

/// <summary>Ingest → rank → split on the demo assets (a slice of the prompts, small K, CPU).</summary>
public sealed class DataStagesEndToEndTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    /// <summary>The first <paramref name="take"/> demo prompts and <paramref name="extraLines"/>, read the way the pipeline reads them.</summary>
    private static IAsyncEnumerable<PromptInput> Prompts(int take, params string[] extraLines)
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-e2e-prompts-").FullName, "prompts.jsonl");
        File.WriteAllLines(file, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(take).Concat(extraLines));
        return PromptSource.ReadAsync(file);
    }

    private static IngestOptions Ingest() => new() { CandidatesPerPrompt = 4, MaxNewTokens = 40, BatchSize = 8, Seed = 11 };

    [Fact]
    public async Task DemoSlice_IngestRankSplit_CountsAddUpAndBestHasHighestReward()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-e2e-").FullName);

        var ingest = await new IngestStage(Ingest()).RunAsync(Prompts(20, "{\"prompt\": \"   \"}"), "prompts.jsonl", Path.Combine(Demo, "policy"), store, "run/ingest");
        var rank = await new RankingStage(new RankingOptions()).RunAsync(store, ingest.Candidates.Path, Path.Combine(Demo, "reward"), "run/rank");
        var split = await new SplitterStage(new SplitterOptions()).RunAsync(store, rank.Preferences.Path, "run/split");

        // Ingest: every row is a prompt or a reject; K candidates per prompt.
        Assert.Equal(21, ingest.RowsIn);
        Assert.Equal(ingest.RowsIn, ingest.Prompts.Rows + ingest.Rejects.Rows);
        Assert.True(ingest.Rejects.Rows >= 1);
        Assert.Equal(ingest.Prompts.Rows * 4, ingest.Candidates.Rows);
        // Rank: every prompt is paired or unpaired.
        Assert.Equal(ingest.Prompts.Rows, rank.PromptsIn);
        Assert.Equal(rank.PromptsIn, rank.Preferences.Rows + rank.Unpaired.Rows);
        // Split: every pair lands once.
        Assert.Equal(rank.Preferences.Rows, split.Easy.Rows + split.Difficult.Rows + split.Dropped.Rows);

        var scored = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(store, rank.Scored.Path);
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, rank.Preferences.Path);
        Assert.NotEmpty(pairs);
        foreach (var pair in pairs)
        {
            var rewards = scored.Where(s => s.PromptId == pair.PromptId).Select(s => s.Reward!.Value).ToList();
            // Best and worst up to the reward judge's tie margin ε = 0.05 (within ε the incumbent stays).
            Assert.InRange(pair.ScoreChosen, rewards.Max() - 0.05, rewards.Max());
            Assert.InRange(pair.ScoreRejected, rewards.Min(), rewards.Min() + 0.05);
            Assert.True(pair.RewardGap > 0);
        }
        Assert.True(await store.ExistsAsync("run/split/gap_histogram.png"));
        Assert.True(await store.ExistsAsync("run/split/report.json"));
    }

    [Fact]
    public async Task DemoSlice_PointwiseRanking_PicksHighestAndLowestRewardWithoutJudgeCalls()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-e2e-pointwise-").FullName);
        var ingest = await new IngestStage(Ingest()).RunAsync(Prompts(24), "prompts.jsonl", Path.Combine(Demo, "policy"), store, "run/ingest");

        var pointwise = await new RankingStage(new RankingOptions { Method = RankingMethod.Pointwise }).RunAsync(store, ingest.Candidates.Path, Path.Combine(Demo, "reward"), "run/pointwise");
        var pairwise = await new RankingStage(new RankingOptions()).RunAsync(store, ingest.Candidates.Path, Path.Combine(Demo, "reward"), "run/pairwise");

        Assert.Equal(0, pointwise.JudgeCalls);
        Assert.Equal(0, pointwise.Comparisons.Rows);
        Assert.True(pairwise.JudgeCalls > 0);
        Assert.Equal(pointwise.PromptsIn, pointwise.Preferences.Rows + pointwise.Unpaired.Rows);
        var scored = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(store, pointwise.Scored.Path);
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, pointwise.Preferences.Path);
        Assert.NotEmpty(pairs);
        foreach (var pair in pairs)
        {
            var mine = scored.Where(s => s.PromptId == pair.PromptId).ToList();
            // Exactly the argmax and argmin (first index among equal scores), not "within ε" as iterative ranking gives.
            var best = mine.OrderByDescending(s => s.Reward).ThenBy(s => s.CandidateIndex).First();
            var worst = mine.OrderBy(s => s.Reward).ThenBy(s => s.CandidateIndex).First();
            Assert.Equal((best.CandidateIndex, worst.CandidateIndex), (pair.ChosenIndex, pair.RejectedIndex));
            Assert.Equal("pointwise:reward", pair.Method);
            Assert.True(pair.RewardGap >= 0.05);
        }
        var pairwiseRows = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, pairwise.Preferences.Path);
        Assert.All(pairwiseRows, p => Assert.Equal("ipr:reward", p.Method));
        // Iterative ranking keeps an incumbent within ε, so its gap is never larger than the pointwise one.
        foreach (var p in pairwiseRows)
            if (pairs.FirstOrDefault(q => q.PromptId == p.PromptId) is { } q) Assert.True(p.RewardGap <= q.RewardGap + 1e-6);
    }
}
