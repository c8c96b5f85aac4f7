using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text.Tests.Tokenizers;

public sealed class CompletionEncoderTests
{
    private static readonly ITextTokenizer Tokenizer = HfTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama"));

    /// <summary>ChatML exactly as the tiny-llama tokenizer_config.json template renders it.</summary>
    private static string ChatMl(IReadOnlyList<Turn> turns, bool addGenerationPrompt) =>
        string.Concat(turns.Select(t => $"<|im_start|>{t.Role}\n{t.Content}<|im_end|>\n")) + (addGenerationPrompt ? "<|im_start|>assistant\n" : "");

    private static int Id(string token) => Tokenizer.TokenToId(token)!.Value;

    [Fact]
    public void Encode_ChatTemplate_CompletionContinuesPromptAndEndsWithOneEndOfTurn()
    {
        var encoder = new CompletionEncoder(Tokenizer, ChatMl, [Id("<|im_end|>")]);

        var e = encoder.Encode([new Turn("user", "What is 2+2?")], "4");

        var full = Tokenizer.Encode(ChatMl([new Turn("user", "What is 2+2?"), new Turn("assistant", "4")], false), addSpecialTokens: false);
        Assert.Equal(full.Take(e.PromptIds.Count + e.CompletionIds.Count), e.PromptIds.Concat(e.CompletionIds));
        Assert.Equal(Id("<|im_end|>"), e.CompletionIds[^1]);
        Assert.Single(e.CompletionIds, Id("<|im_end|>"));
        Assert.Equal(Tokenizer.Encode("<|im_start|>assistant\n", false).TakeLast(3), e.PromptIds.TakeLast(3));
    }

    [Fact]
    public void Encode_CompletionAlreadyEndingWithEndOfTurn_GetsNoSecondOne()
    {
        var encoder = new CompletionEncoder(Tokenizer, ChatMl, [Id("<|im_end|>")]);

        var e = encoder.Encode([new Turn("user", "Hi")], "Hello<|im_end|>");

        Assert.Single(e.CompletionIds, Id("<|im_end|>"));
        Assert.Equal(Id("<|im_end|>"), e.CompletionIds[^1]);
    }

    [Fact]
    public void Encode_PlainText_AppendsEosOnceAndAddsNoSpecialTokensToTheCompletion()
    {
        var encoder = new CompletionEncoder(Tokenizer, template: null);
        int eos = Tokenizer.EosTokenId!.Value;

        var e = encoder.Encode([new Turn("user", "Review of Driftwood:")], " A joy to watch.");
        var again = encoder.Encode([new Turn("user", "Review of Driftwood:")], " A joy to watch.<|endoftext|>");

        Assert.Equal(Tokenizer.Encode("Review of Driftwood:"), e.PromptIds);
        Assert.Equal([.. Tokenizer.Encode(" A joy to watch.", false), eos], e.CompletionIds);
        Assert.Equal(e.CompletionIds, again.CompletionIds);
    }

    [Fact]
    public void Encode_EmptyCompletion_IsJustTheEndToken()
    {
        var e = new CompletionEncoder(Tokenizer, null).Encode([new Turn("user", "x")], "");

        Assert.Equal([Tokenizer.EosTokenId!.Value], e.CompletionIds);
    }

    [Fact]
    public void Encode_TemplateThatRewritesThePrompt_FailsWithWhereItDiffers()
    {
        // Like a template that adds a default system prompt only when the last turn is the user's.
        string Rewriting(IReadOnlyList<Turn> turns, bool gen) =>
            (turns[^1].Role == "user" ? "<|im_start|>system\nYou are helpful.<|im_end|>\n" : "") + ChatMl(turns, gen);
        var encoder = new CompletionEncoder(Tokenizer, Rewriting, [Id("<|im_end|>")]);

        var ex = Assert.Throws<InvalidDataException>(() => encoder.Encode([new Turn("user", "Hi")], "Hello"));

        Assert.Contains("differ from character 12", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RenderPrompt_ConversationWithoutTemplate_SaysATemplateIsNeeded()
    {
        var encoder = new CompletionEncoder(Tokenizer, null);

        var ex = Assert.Throws<InvalidDataException>(() => encoder.RenderPrompt([new Turn("system", "s"), new Turn("user", "u")]));

        Assert.Contains("needs a chat template", ex.Message, StringComparison.Ordinal);
    }
}
