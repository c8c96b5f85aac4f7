using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests;

public sealed class PreferenceArtifactsTests
{
    private static readonly List<ChatTurnRow> Conversation =
        [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = "Review of Driftwood:" }];

    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-prefs-").FullName);

    private static PreferenceRow Pair(string id, List<ChatTurnRow>? messages) => new()
    {
        PromptId = id, Prompt = "Review of Driftwood:", PromptMessages = messages, Chosen = " A joy.", Rejected = " Dull.",
        ScoreChosen = 1.5, ScoreRejected = -0.5, RewardGap = 2, JudgeAgrees = true, Method = "ipr:reward", ChosenIndex = 1, RejectedIndex = 0,
        PromptInputIds = [2, 5, 6], ChosenInputIds = [7, 1], RejectedInputIds = [8, 1],
    };

    [Fact]
    public async Task WriteAsync_PlainPairs_TrlStandardRows()
    {
        var info = await PreferenceArtifacts.WriteAsync(_store, "p/standard.parquet", [Pair("a", null)]);

        Assert.Equal(PreferenceRow.SchemaVersion, info.SchemaVersion);
        Assert.Equal(PreferenceFormat.Standard, await PreferenceSource.DetectFormatAsync(_store, info.Path));
        Assert.Equivalent(Pair("a", null), Assert.Single(await PreferenceArtifacts.ReadAllAsync(_store, info.Path)), strict: true);
    }

    [Fact]
    public async Task WriteAsync_ConversationalPairs_TrlConversationalRowsWithOurColumns()
    {
        var info = await PreferenceArtifacts.WriteAsync(_store, "p/conversational.parquet", [Pair("a", Conversation)]);

        Assert.Equal(ConversationalPreferenceRow.SchemaVersion, info.SchemaVersion);
        var row = Assert.Single(await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(_store, info.Path));
        Assert.Equal(Conversation, row.Prompt);
        Assert.Equal([new ChatTurnRow { Role = "assistant", Content = " A joy." }], row.Chosen);
        Assert.Equal([new ChatTurnRow { Role = "assistant", Content = " Dull." }], row.Rejected);
        Assert.Equal((1.5, -0.5, 1, 0), (row.ScoreChosen, row.ScoreRejected, row.ChosenIndex, row.RejectedIndex));
        Assert.Equivalent(Pair("a", Conversation), Assert.Single(await PreferenceArtifacts.ReadAllAsync(_store, info.Path)), strict: true);
    }

    [Fact]
    public async Task WriteAsync_ConversationalPairs_PreferenceSourceReadsConversationAndIds()
    {
        var info = await PreferenceArtifacts.WriteAsync(_store, "p/conversational.parquet", [Pair("a", Conversation)]);

        Assert.Equal(PreferenceFormat.Conversational, await PreferenceSource.DetectFormatAsync(_store, info.Path));
        var inputs = new List<PreferenceInput>();
        await foreach (var input in PreferenceSource.ReadAsync(_store, info.Path)) inputs.Add(input);
        var pair = Assert.Single(inputs).Pair!;
        Assert.Equal(Conversation, pair.PromptMessages);
        Assert.Equal((" A joy.", " Dull."), (pair.Chosen, pair.Rejected));
        Assert.Equal([2, 5, 6], pair.PromptInputIds);
        Assert.Equal([7, 1], pair.ChosenInputIds);
        Assert.Equal([8, 1], pair.RejectedInputIds);
    }

    [Fact]
    public async Task WriteAsync_PlainAndConversationalPairs_OneConversationalFilePlainPromptAsUserTurn()
    {
        var info = await PreferenceArtifacts.WriteAsync(_store, "p/mixed.parquet", [Pair("a", null), Pair("b", Conversation)]);

        var rows = await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(_store, info.Path);
        Assert.Equal([new ChatTurnRow { Role = "user", Content = "Review of Driftwood:" }], rows[0].Prompt);
        Assert.Equal(Conversation, rows[1].Prompt);
    }

    [Fact]
    public async Task ReadAllAsync_CompletionOfTwoTurns_ThrowsNamingRowAndColumn()
    {
        await ParquetArtifacts.WriteAsync(_store, "p/bad.parquet", [new ConversationalPreferenceRow
        {
            PromptId = "a", Prompt = Conversation,
            Chosen = [new() { Role = "assistant", Content = "x" }, new() { Role = "user", Content = "y" }], Rejected = [new() { Role = "assistant", Content = "z" }],
        }]);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => PreferenceArtifacts.ReadAllAsync(_store, "p/bad.parquet"));
        Assert.Contains("row 0: 'chosen' has 2 turn(s)", ex.Message, StringComparison.Ordinal);
    }
}
