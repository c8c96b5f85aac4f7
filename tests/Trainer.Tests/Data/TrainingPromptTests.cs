using PrefPipe.Artifacts.Rows;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;

namespace PrefPipe.Trainer.Tests.Data;

/// <summary>Rollout and evaluation prompts are fed to the policy with the ids ingest generated from.</summary>
public sealed class TrainingPromptTests
{
    private static readonly PromptEncoder Templated = PromptEncoder.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy"));

    [Fact]
    public void From_ConversationalPromptRowWithoutIds_TemplatedAsIngest()
    {
        // Plan ppo read prompts.parquet's text column: a conversation (prompt null) became an empty prompt.
        var row = new PromptRow { PromptId = "c", Messages = [new ChatTurnRow { Role = "user", Content = "Review of Driftwood:" }] };

        var prompt = TrainingPrompt.From(row, Templated);

        Assert.Equal(Templated.EncodeText("Review of Driftwood:").Ids, prompt.Ids);
        Assert.Contains("Review of Driftwood:", prompt.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void From_RowsWithStoredIds_UseThemAsTheyAre()
    {
        List<int> ids = [0, 5, 6, 7];

        var fromPrompt = TrainingPrompt.From(new PromptRow { PromptId = "p", Prompt = "x", PromptInputIds = ids }, Templated);
        var fromPair = TrainingPrompt.From(new PreferenceRow { PromptId = "q", Prompt = "<|endoftext|>x", PromptInputIds = ids }, Templated);

        Assert.Equal(ids, fromPrompt.Ids);
        Assert.Equal(ids, fromPair.Ids);
    }

    [Fact]
    public void From_PairWithoutIds_RenderedPromptKeepsOneBos()
    {
        string rendered = Templated.EncodeText("Review of Driftwood:").Rendered;

        var prompt = TrainingPrompt.From(new PreferenceRow { PromptId = "q", Prompt = rendered }, Templated);

        Assert.Equal(Templated.EncodeText("Review of Driftwood:").Ids, prompt.Ids);
        Assert.Single(prompt.Ids.TakeWhile(i => i == Templated.Tokenizer.BosTokenId));
    }
}
