using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Trainer.Tests.Data;

/// <summary>Prompts for rollouts and evaluation, from whatever carries them, with every row used or rejected.</summary>
public sealed class TrainingPromptsTests
{
    private static readonly PromptEncoder Encoder = PromptEncoder.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy"));

    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-prompts-").FullName);

    private async Task<StoreFile> Lines(string path, params string[] lines)
    {
        await File.WriteAllLinesAsync(_store.UriOf(path), lines);
        return new StoreFile(_store, path);
    }

    [Fact]
    public async Task ReadAsync_PromptsArtifact_IdsAreTheStoredOnes()
    {
        // Ids text encoding would not give (no BOS): only the stored ones can come out.
        List<int> first = [40, 41, 42], second = [43, 44];
        await ParquetArtifacts.WriteAsync(_store, "prompts.parquet", [
            new PromptRow { PromptId = "a", Prompt = "Review of Driftwood:", PromptInputIds = first },
            new PromptRow { PromptId = "b", Prompt = "Review of Kite Season:", PromptInputIds = second },
        ]);

        var set = await TrainingPrompts.ReadAsync(new StoreFile(_store, "prompts.parquet"), Encoder, "ppo");

        Assert.Equal(2, set.RowsIn);
        Assert.Empty(set.Rejects);
        Assert.Equal([("a", first), ("b", second)], set.Prompts.Select(p => (p.PromptId, p.Ids.ToList())));
    }

    [Fact]
    public async Task ReadAsync_PreferencePairs_PromptIdsAreThePairsStoredPromptIds()
    {
        List<int> ids = [40, 41, 42];
        await ParquetArtifacts.WriteAsync(_store, "difficult.parquet", [
            new PreferenceRow { PromptId = "p", Prompt = "Review of Driftwood:", Chosen = " Great.", Rejected = " Dull.", PromptInputIds = ids, ChosenInputIds = [50], RejectedInputIds = [51] },
            new PreferenceRow { PromptId = "q", Prompt = "Review of Kite Season:", Chosen = " Great.", Rejected = " Dull." },
        ]);

        var set = await TrainingPrompts.ReadAsync(new StoreFile(_store, "difficult.parquet"), Encoder, "ppo");

        Assert.Equal(2, set.RowsIn);
        Assert.Equal(["p", "q"], set.Prompts.Select(p => p.PromptId));
        Assert.Equal(ids, set.Prompts[0].Ids);
        // A pair without ids: its prompt as the policy saw it.
        Assert.Equal(Encoder.EncodeRendered("Review of Kite Season:"), set.Prompts[1].Ids);
    }

    [Fact]
    public async Task ReadAsync_JsonLinesWithIdColumn_NamedByIt()
    {
        var file = await Lines("prompts.jsonl", """{"id": "train-7", "prompt": "Review of Driftwood:"}""", """{"id": "train-9", "prompt": "Review of Kite Season:"}""");

        var set = await TrainingPrompts.ReadAsync(file, Encoder, "ppo");

        Assert.Equal(["train-7", "train-9"], set.Prompts.Select(p => p.PromptId));
        Assert.Equal(Encoder.EncodeText("Review of Driftwood:").Ids, set.Prompts[0].Ids);
    }

    [Fact]
    public async Task ReadAsync_JsonLinesWithIdColumnIgnored_NamedByPrefixAndRow()
    {
        var file = await Lines("prompts.jsonl", """{"id": "train-7", "prompt": "Review of Driftwood:"}""", """{"id": "train-9", "prompt": "Review of Kite Season:"}""");

        var set = await TrainingPrompts.ReadAsync(file, Encoder, "evaluate", "eval-", new PromptSourceOptions { IdColumns = [] });

        Assert.Equal(["eval-0", "eval-1"], set.Prompts.Select(p => p.PromptId));
    }

    [Fact]
    public async Task ReadAsync_MalformedJsonLine_RejectedNamingItsLine()
    {
        var file = await Lines("prompts.jsonl", """{"prompt": "Review of Driftwood:"}""", """{"prompt": "Review of""", """{"prompt": "Review of Kite Season:"}""");

        var set = await TrainingPrompts.ReadAsync(file, Encoder, "ppo");

        Assert.Equal(3, set.RowsIn);
        Assert.Equal(["row-0", "row-2"], set.Prompts.Select(p => p.PromptId));
        var reject = Assert.Single(set.Rejects);
        Assert.Equal(("ppo", file.Uri, 1L), (reject.Stage, reject.Source, reject.Row));
        Assert.StartsWith("line 2: invalid JSON", reject.Reason, StringComparison.Ordinal);
        Assert.Equal("""{"prompt": "Review of""", reject.Raw);
    }

    [Fact]
    public async Task ReadAsync_ConversationalPairThePolicyCannotRender_RejectedNotThrown()
    {
        // The demo policy has no chat template: a prompt of a system and a user turn cannot be rendered for it. That is
        // this row's problem (the dpo unit rejects such a pair too), not the file's.
        ChatTurnRow User(string text) => new() { Role = "user", Content = text };
        ChatTurnRow Assistant(string text) => new() { Role = "assistant", Content = text };
        await ParquetArtifacts.WriteAsync(_store, "conversational.parquet", [
            new ConversationalPairRow { PromptId = "one-turn", Chosen = [User("Review of Driftwood:"), Assistant(" Great.")], Rejected = [User("Review of Driftwood:"), Assistant(" Dull.")] },
            new ConversationalPairRow
            {
                PromptId = "two-turns",
                Chosen = [new() { Role = "system", Content = "Be brief." }, User("Review of Kite Season:"), Assistant(" Great.")],
                Rejected = [new() { Role = "system", Content = "Be brief." }, User("Review of Kite Season:"), Assistant(" Dull.")],
            },
        ]);
        var file = new StoreFile(_store, "conversational.parquet");

        var set = await TrainingPrompts.ReadAsync(file, Encoder, "ppo");

        Assert.Equal(2, set.RowsIn);
        Assert.Equal(Encoder.EncodeText("Review of Driftwood:").Ids, Assert.Single(set.Prompts).Ids);
        var reject = Assert.Single(set.Rejects);
        Assert.Equal((1L, "two-turns"), (reject.Row, reject.Key));
        Assert.Contains("needs a chat template", reject.Reason, StringComparison.Ordinal);
    }
}

/// <summary>A TRL conversational pair with implicit prompt: chosen and rejected share the prompt turns.</summary>
public sealed record ConversationalPairRow
{
    [System.Text.Json.Serialization.JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    [System.Text.Json.Serialization.JsonPropertyName("chosen")] public List<ChatTurnRow> Chosen { get; init; } = [];

    [System.Text.Json.Serialization.JsonPropertyName("rejected")] public List<ChatTurnRow> Rejected { get; init; } = [];
}
