using PrefPipe.Ingest.Prompts;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Ingest.Tests.Prompts;

public sealed class PromptValidatorTests
{
    private static readonly ITextTokenizer Tokenizer = HfTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama"));

    private static PromptValidator Validator(IngestOptions? options = null, bool template = false) =>
        new(PromptEncoder.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama"), template ? ChatTemplateMode.Always : ChatTemplateMode.Never, options?.SystemPrompt),
            options ?? new IngestOptions());

    [Fact]
    public void Validate_EveryRowLandsInExactlyOneOutput_WithReasons()
    {
        var validator = Validator();
        RawPrompt[] rows =
        [
            new(0, "Review of Driftwood:", null),
            new(1, "  Review of   Driftwood: ", null),
            new(2, "   ", null),
            new(3, null, [new Turn("user", "Hi"), new Turn("assistant", "Hello")]),
            new(4, null, [new Turn("narrator", "Once")]),
            new(5, "Review of Kite Season:", null),
        ];

        var results = rows.Select(validator.Validate).ToList();

        Assert.All(results, r => Assert.True(r.Prompt is null ^ r.Rejection is null));
        Assert.Equal([0L, 5L], results.Where(r => r.Prompt is not null).Select(r => r.Prompt!.Row));
        var reasons = results.Where(r => r.Rejection is not null).ToDictionary(r => r.Rejection!.Row, r => r.Rejection!.Reason);
        Assert.Equal("duplicate of row 0 (same normalised prompt)", reasons[1]);
        Assert.Equal("prompt is empty; expected text", reasons[2]);
        Assert.Contains("ends with a 'assistant' turn", reasons[3], StringComparison.Ordinal);
        Assert.Contains("messages[0].role is 'narrator'", reasons[4], StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ConversationWithoutTemplate_IsRejectedSayingATemplateIsNeeded()
    {
        var (prompt, rejection) = Validator().Validate(new RawPrompt(0, null, [new Turn("system", "Be brief."), new Turn("user", "Hi")]));

        Assert.Null(prompt);
        Assert.Contains("needs a chat template", rejection!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_WithTemplateAndSystemPrompt_RendersTheConversation()
    {
        var (prompt, _) = Validator(new IngestOptions { SystemPrompt = "Be brief." }, template: true).Validate(new RawPrompt(0, "Hi", null));

        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt!.Rendered);
        Assert.Equal(Tokenizer.Encode(prompt.Rendered, addSpecialTokens: false), prompt.PromptIds);
    }

    [Fact]
    public void Validate_OverLong_RejectsOrKeepsTheEndPerPolicy()
    {
        string text = string.Join(' ', Enumerable.Repeat("word", 40));
        var all = Tokenizer.Encode(text);

        var (_, rejected) = Validator(new IngestOptions { MaxPromptTokens = 10 }).Validate(new RawPrompt(0, text, null));
        var (kept, _) = Validator(new IngestOptions { MaxPromptTokens = 10, OverLong = OverLongPolicy.Truncate }).Validate(new RawPrompt(0, text, null));

        Assert.Contains($"{all.Count} tokens after templating, more than max_prompt_tokens 10", rejected!.Reason, StringComparison.Ordinal);
        Assert.True(kept!.Truncated);
        Assert.Equal(all.TakeLast(10), kept.PromptIds);
    }

    [Fact]
    public void Validate_DeduplicateOff_KeepsRepeatsUnderDistinctStableIds()
    {
        var validator = Validator(new IngestOptions { Deduplicate = false });

        var a = validator.Validate(new RawPrompt(0, "Review of Driftwood:", null)).Prompt!;
        var b = validator.Validate(new RawPrompt(1, "Review of Driftwood:", null)).Prompt!;

        var c = validator.Validate(new RawPrompt(2, " Review of Driftwood: ", null)).Prompt!;
        Assert.Equal(a.PromptId + "-2", b.PromptId);
        Assert.Equal(a.PromptId + "-3", c.PromptId);
    }
}
