using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Splitter.Tests;

/// <summary>The split stage from a preferences artifact to easy, difficult and dropped artifacts.</summary>
public sealed class SplitterStageTests
{
    private static PreferenceRow Pair(string id, double gap) => new()
    {
        PromptId = id, Prompt = "Review of Driftwood:", Chosen = $" good {id}", Rejected = $" bad {id}", ScoreChosen = gap, ScoreRejected = 0, RewardGap = gap,
        JudgeAgrees = gap > 0, Method = "ipr:reward", ChosenIndex = 0, RejectedIndex = 1,
        PromptInputIds = [0, 5, 6], ChosenInputIds = [7, 8, 0], RejectedInputIds = [9, 0],
    };

    [Fact]
    public async Task RunAsync_FlippedNegativeGap_SwapsTextsScoresIndicesAndTokenIds()
    {
        // A flipped pair trains the other way round: its generated ids must follow its texts, or training would score
        // the rejected response's ids as the chosen one.
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-split-").FullName);
        await ParquetArtifacts.WriteAsync(store, "in/preferences.parquet", new[] { Pair("a", 4), Pair("b", 3), Pair("c", -5), Pair("d", 0.5) });

        var result = await new SplitterStage(new SplitterOptions { Rule = SplitRule.Threshold, Threshold = 2, NegativeGaps = NegativeGapPolicy.Flip })
            .RunAsync(store, "in/preferences.parquet", "out");

        Assert.Equal(4, result.PairsIn);
        Assert.Equal(result.PairsIn, result.Easy.Rows + result.Difficult.Rows + result.Dropped.Rows);
        var easy = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, result.Easy.Path);
        var flipped = easy.Single(p => p.PromptId == "c");
        Assert.Equal((" bad c", " good c", 5.0, 1, 0), (flipped.Chosen, flipped.Rejected, flipped.RewardGap, flipped.ChosenIndex, flipped.RejectedIndex));
        Assert.Equal([9, 0], flipped.ChosenInputIds);
        Assert.Equal([7, 8, 0], flipped.RejectedInputIds);
        Assert.Equal([0, 5, 6], flipped.PromptInputIds);
        Assert.True(await store.ExistsAsync("out/report.json"));
    }

    [Fact]
    public async Task RunAsync_ConversationalPreferences_EasyAndDifficultStayConversational()
    {
        List<ChatTurnRow> conversation = [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = "Review of Driftwood:" }];
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-split-").FullName);
        await PreferenceArtifacts.WriteAsync(store, "in/preferences.parquet", [.. new[] { Pair("a", 4), Pair("b", 3), Pair("c", -5), Pair("d", 0.5) }.Select(p => p with { PromptMessages = conversation })]);

        var result = await new SplitterStage(new SplitterOptions { Rule = SplitRule.Threshold, Threshold = 2, NegativeGaps = NegativeGapPolicy.Flip })
            .RunAsync(store, "in/preferences.parquet", "out");

        Assert.Equal(ConversationalPreferenceRow.SchemaVersion, result.Easy.SchemaVersion);
        var easy = await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(store, result.Easy.Path);
        var difficult = await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(store, result.Difficult.Path);
        Assert.All(easy.Concat(difficult), r => Assert.Equal(conversation, r.Prompt));
        var flipped = easy.Single(p => p.PromptId == "c");
        Assert.Equal([new ChatTurnRow { Role = "assistant", Content = " bad c" }], flipped.Chosen);
        Assert.Equal([9, 0], flipped.ChosenInputIds);
    }

    [Fact]
    public async Task RunAsync_NoPairs_FailsNamingTheFileAndWritesNothing()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-split-empty-").FullName);
        await ParquetArtifacts.WriteAsync(store, "in/preferences.parquet", Array.Empty<PreferenceRow>());

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => new SplitterStage(new SplitterOptions()).RunAsync(store, "in/preferences.parquet", "out"));

        Assert.Contains("preferences.parquet: 0 preference pairs", ex.Message, StringComparison.Ordinal);
        Assert.Empty(await store.ListAsync("out/").ToListAsync());
    }
}
