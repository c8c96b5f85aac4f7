using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Inputs;

public sealed class PreferenceSourceTests
{
    private readonly LocalArtifactStore _fixtures = new(Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets"));

    private async Task<List<PreferenceInput>> ReadAll(string path)
    {
        var list = new List<PreferenceInput>();
        await foreach (var input in PreferenceSource.ReadAsync(_fixtures, path)) list.Add(input);
        return list;
    }

    [Fact]
    public async Task ReadAsync_StandardFixture_ReadsPromptChosenRejected()
    {
        var rows = await ReadAll("standard_preference.parquet");

        Assert.Equal(PreferenceFormat.Standard, await PreferenceSource.DetectFormatAsync(_fixtures, "standard_preference.parquet"));
        Assert.Equal(3, rows.Count);
        Assert.Equal(("What is the capital of France?", "Paris.", "London."), (rows[0].Pair!.Prompt, rows[0].Pair!.Chosen, rows[0].Pair!.Rejected));
        Assert.Equal(("Explain TCP in one sentence.", "TCP is a reliable, ordered byte stream protocol.", "It is a thing."), (rows[2].Pair!.Prompt, rows[2].Pair!.Chosen, rows[2].Pair!.Rejected));
        Assert.All(rows, r => Assert.Null(r.RejectReason));
        Assert.True(double.IsNaN(rows[0].Pair!.ScoreChosen));
    }

    [Fact]
    public async Task ReadAsync_ConversationalZstdFixture_SplitsSharedPromptTurnsFromCompletions()
    {
        var rows = await ReadAll("conversational_preference.parquet");

        Assert.Equal(PreferenceFormat.Conversational, await PreferenceSource.DetectFormatAsync(_fixtures, "conversational_preference.parquet"));
        Assert.Equal(2, rows.Count);
        var first = rows[0].Pair!;
        Assert.Equal(("p-001", "How do I boil an egg?", "Boil water, add the egg, wait 9 minutes.", "Eggs are round."), (first.PromptId, first.Prompt, first.Chosen, first.Rejected));
        Assert.Equal([("user", "How do I boil an egg?")], first.PromptMessages!.Select(t => (t.Role, t.Content)));
        Assert.Equal((8.5, 3.0, 5.5), (first.ScoreChosen, first.ScoreRejected, first.RewardGap));
        var second = rows[1].Pair!;
        Assert.Equal(("p-002", "Hi!", "No.", 7.0, 1.5), (second.PromptId, second.Chosen, second.Rejected, second.ScoreChosen, second.ScoreRejected));
    }

    [Fact]
    public async Task ReadAsync_PromptIdsWithoutCompletionIds_KeepsThePromptIds_PartialCompletionIdsKeepNone()
    {
        // Pairs from an external generator carry prompt ids only; a file with one completion's ids but not the other's is
        // inconsistent and is read as text.
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-pref-ids-").FullName);
        PreferenceRow[] pairs =
        [
            new() { PromptId = "a", Prompt = "p", Chosen = "x", Rejected = "y", PromptInputIds = [1, 2] },
            new() { PromptId = "b", Prompt = "p", Chosen = "x", Rejected = "y", PromptInputIds = [1, 2], ChosenInputIds = [3] },
        ];
        await PreferenceArtifacts.WriteAsync(store, "pairs.parquet", pairs);

        var rows = new List<PreferenceInput>();
        await foreach (var input in PreferenceSource.ReadAsync(store, "pairs.parquet")) rows.Add(input);

        Assert.Equal([1, 2], rows[0].Pair!.PromptInputIds);
        Assert.Null(rows[0].Pair!.ChosenInputIds);
        Assert.Null(rows[1].Pair!.PromptInputIds);
        Assert.Null(rows[1].Pair!.ChosenInputIds);
    }

    [Theory]
    [InlineData(false, "'chosen' has no assistant turn after the prompt (its last turn is user)")]
    [InlineData(true, "'rejected' has no assistant turn after the prompt (its last turn is user)")]
    public async Task ReadAsync_ConversationWithoutAssistantTurn_RejectsNamingTheSideWithoutOne(bool rejectedLacksIt, string expected)
    {
        // Both sides share the user turn; one ends there. The reason used to be that they "share no leading turns".
        ChatTurnRow[] full = [new() { Role = "user", Content = "Hi?" }, new() { Role = "assistant", Content = "Hello." }];
        ChatTurnRow[] cut = [new() { Role = "user", Content = "Hi?" }];
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-pref-").FullName);
        await ParquetArtifacts.WriteAsync(store, "pairs.parquet", [new ConversationalPair { Chosen = rejectedLacksIt ? [.. full] : [.. cut], Rejected = rejectedLacksIt ? [.. cut] : [.. full] }]);

        var rows = new List<PreferenceInput>();
        await foreach (var input in PreferenceSource.ReadAsync(store, "pairs.parquet")) rows.Add(input);

        var row = Assert.Single(rows);
        Assert.Null(row.Pair);
        Assert.StartsWith("row 0: " + expected, row.RejectReason, StringComparison.Ordinal);
        Assert.DoesNotContain("share no leading turns", row.RejectReason, StringComparison.Ordinal);
    }

    /// <summary>A TRL conversational preference row with an implicit prompt.</summary>
    public sealed class ConversationalPair
    {
        [System.Text.Json.Serialization.JsonPropertyName("chosen")] public List<ChatTurnRow> Chosen { get; init; } = [];

        [System.Text.Json.Serialization.JsonPropertyName("rejected")] public List<ChatTurnRow> Rejected { get; init; } = [];
    }

    [Fact]
    public async Task ReadAsync_PromptsFileAsPreferences_ThrowsNamingTheMissingColumn()
    {
        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAll("prompts.parquet"));

        Assert.Contains("prompts.parquet: no 'chosen' column", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Columns: prompt, source", ex.Message, StringComparison.Ordinal);
    }
}
