using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Ranking.Tests;

/// <summary>Merging shard parts (no model runs in a merge: the parts are written here by hand).</summary>
public sealed class RankingStageTests
{
    private const int Shards = 3;

    private static readonly string[] Prompts = ["q-a", "q-b", "q-c", "q-d", "q-e", "q-f", "q-g", "q-h"];

    private static async Task<LocalArtifactStore> WriteShardsAsync(Func<Shard, List<PreferenceRow>, List<PreferenceRow>>? tamper = null)
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rank-merge-").FullName);
        // Candidates interleave prompts the way a file may: merge must restore exactly this order for scored rows.
        var candidates = Enumerable.Range(0, 2).SelectMany(k => Prompts.Select(p => new CandidateRow { PromptId = p, Prompt = $"{p}:", CandidateIndex = k, Response = $"{p}/{k}" })).ToList();
        await ParquetArtifacts.WriteAsync(store, "r/ingest/candidates.parquet", candidates);
        for (int i = 0; i < Shards; i++)
        {
            var shard = new Shard(i, Shards);
            var mine = candidates.Where(c => shard.Contains(c.PromptId)).ToList();
            string folder = shard.Folder("r/rank/shards");
            await ParquetArtifacts.WriteAsync(store, $"{folder}/scored_candidates.parquet",
                mine.Select(c => new ScoredCandidateRow { PromptId = c.PromptId, CandidateIndex = c.CandidateIndex, Reward = c.CandidateIndex }).ToList());
            var ids = mine.Select(c => c.PromptId).Distinct().ToList();
            await ParquetArtifacts.WriteAsync(store, $"{folder}/comparisons.parquet",
                ids.Select(p => new ComparisonRow { PromptId = p, A = 0, B = 1, Order = "ab", Verdict = "b", Judge = "reward" }).ToList());
            var pairs = ids.Where(p => p != "q-c").Select(p => new PreferenceRow { PromptId = p, Prompt = $"{p}:", Chosen = $"{p}/1", Rejected = $"{p}/0", ChosenIndex = 1, RejectedIndex = 0 }).ToList();
            await PreferenceArtifacts.WriteAsync(store, $"{folder}/preferences.parquet", tamper is null ? pairs : tamper(shard, pairs));
            await ParquetArtifacts.WriteAsync(store, $"{folder}/unpaired.parquet",
                ids.Where(p => p == "q-c").Select(p => new RejectRow { Stage = "rank", Key = p, Reason = "tied" }).ToList());
        }
        return store;
    }

    [Fact]
    public async Task MergeShardsAsync_ThreeShards_WritesRowsInTheUnshardedOrder()
    {
        Assert.Equal(Shards, Prompts.Select(p => Shard.Of(p, Shards)).Distinct().Count());
        var store = await WriteShardsAsync();

        var result = await new RankingStage(new RankingOptions()).MergeShardsAsync(store, "r/ingest/candidates.parquet", "reward", s => s.Folder("r/rank/shards"), Shards, "r/rank");

        var scored = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(store, "r/rank/scored_candidates.parquet");
        Assert.Equal(Enumerable.Range(0, 2).SelectMany(k => Prompts.Select(p => (p, k))), scored.Select(s => (s.PromptId, s.CandidateIndex)));
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, "r/rank/preferences.parquet");
        Assert.Equal(Prompts.Where(p => p != "q-c"), pairs.Select(p => p.PromptId));
        var comparisons = await ParquetArtifacts.ReadAllAsync<ComparisonRow>(store, "r/rank/comparisons.parquet");
        Assert.Equal(Prompts, comparisons.Select(c => c.PromptId));
        Assert.Equal(8, result.PromptsIn);
        Assert.Equal(8, result.JudgeCalls);
        Assert.Equal(7, result.Preferences.Rows);
        Assert.Equal(1, result.Unpaired.Rows);
    }

    [Fact]
    public async Task MergeShardsAsync_ConversationalShards_WritesTrlConversationalPairs()
    {
        List<ChatTurnRow> Turns(string p) => [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = $"{p}:" }];
        var store = await WriteShardsAsync((_, pairs) => [.. pairs.Select(p => p with { PromptMessages = Turns(p.PromptId), PromptInputIds = [2, 3], ChosenInputIds = [4], RejectedInputIds = [5] })]);

        await new RankingStage(new RankingOptions()).MergeShardsAsync(store, "r/ingest/candidates.parquet", "reward", s => s.Folder("r/rank/shards"), Shards, "r/rank");

        var rows = await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(store, "r/rank/preferences.parquet");
        Assert.Equal(Prompts.Where(p => p != "q-c"), rows.Select(r => r.PromptId));
        Assert.All(rows, r => Assert.Equal(Turns(r.PromptId), r.Prompt));
        Assert.All(rows, r => Assert.Equal([new ChatTurnRow { Role = "assistant", Content = $"{r.PromptId}/1" }], r.Chosen));
        Assert.All(rows, r => Assert.Equal([2, 3], r.PromptInputIds));
    }

    [Fact]
    public async Task MergeShardsAsync_PromptOfAnotherShard_ThrowsNamingTheFileAndPrompt()
    {
        string foreign = Prompts.First(p => Shard.Of(p, Shards) != 0);
        var store = await WriteShardsAsync((shard, pairs) => shard.Index == 0 ? [.. pairs, new PreferenceRow { PromptId = foreign, Prompt = "x", Chosen = "a", Rejected = "b" }] : pairs);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new RankingStage(new RankingOptions()).MergeShardsAsync(store, "r/ingest/candidates.parquet", "reward", s => s.Folder("r/rank/shards"), Shards, "r/rank"));

        Assert.Contains("shard-0000/preferences.parquet", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"prompt '{foreign}' does not belong to shard 0/3", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MergeShardsAsync_MissingShard_ThrowsFileNotFound()
    {
        var store = await WriteShardsAsync();
        await store.DeleteAsync(new Shard(1, Shards).Folder("r/rank/shards") + "/comparisons.parquet");

        await Assert.ThrowsAsync<FileNotFoundException>(() =>
            new RankingStage(new RankingOptions()).MergeShardsAsync(store, "r/ingest/candidates.parquet", "reward", s => s.Folder("r/rank/shards"), Shards, "r/rank"));
    }
}
