using System.Text.Json.Nodes;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>The one prompt encoding: one BOS whatever adds it, the same ids from a rendered prompt, one EOS decision.</summary>
public sealed class PromptEncoderTests
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
    private static readonly string TemplatedBos = Path.Combine(Fixtures, "templated-bos-policy");

    /// <summary>A copy of the templated-BOS policy's tokenizer files with tokenizer_config.json edited.</summary>
    private static string Variant(Action<JsonObject> edit)
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-prompt-encoder-").FullName;
        foreach (string f in new[] { "tokenizer.json", "config.json", "generation_config.json" })
            File.Copy(Path.Combine(TemplatedBos, f), Path.Combine(dir, f));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TemplatedBos, "tokenizer_config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return dir;
    }

    [Fact]
    public void EncodeText_BosTemplateAndBosPostProcessor_OneBos()
    {
        var encoder = PromptEncoder.Load(TemplatedBos);
        int bos = encoder.Tokenizer.BosTokenId!.Value;

        var prompt = encoder.EncodeText("Review of Driftwood:");

        Assert.StartsWith("<|endoftext|><start_of_turn>user\nReview of Driftwood:<end_of_turn>\n<start_of_turn>model\n", prompt.Rendered, StringComparison.Ordinal);
        Assert.Equal(bos, prompt.Ids[0]);
        Assert.NotEqual(bos, prompt.Ids[1]);
        // What the tokenizer gives the rendered text on its own (transformers: apply_chat_template(tokenize=True) encodes
        // without the post-processor): the template's BOS only.
        Assert.Equal(encoder.Tokenizer.Encode(prompt.Rendered, addSpecialTokens: false), prompt.Ids);
        // Encoding the stored rendered prompt again gives the same ids (the post-processor would add a second BOS).
        Assert.Equal(prompt.Ids, encoder.EncodeRendered(prompt.Rendered));
        Assert.Equal([bos, bos], encoder.Tokenizer.Encode(prompt.Rendered, addSpecialTokens: true).Take(2));
    }

    [Fact]
    public void EncodeText_TemplateWithoutBos_NoBosAsTransformers()
    {
        // A Qwen/ChatML-style template without {{ bos_token }} over a tokenizer whose post-processor adds BOS:
        // apply_chat_template(tokenize=True) gives no BOS, and generation and training then agree on that.
        string dir = Variant(c => c["chat_template"] = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
        var encoder = PromptEncoder.Load(dir);

        var prompt = encoder.EncodeText("Hi");

        Assert.DoesNotContain(encoder.Tokenizer.BosTokenId!.Value, prompt.Ids);
        Assert.Equal(prompt.Ids, encoder.Tokenizer.Encode(prompt.Rendered, addSpecialTokens: false));
    }

    [Fact]
    public void EncodeText_NoTemplate_PostProcessorAddsOneBos()
    {
        var encoder = PromptEncoder.Load(TemplatedBos, ChatTemplateMode.Never);
        int bos = encoder.Tokenizer.BosTokenId!.Value;

        var prompt = encoder.EncodeText("Review of Driftwood:");

        Assert.Equal("Review of Driftwood:", prompt.Rendered);
        Assert.Equal(bos, prompt.Ids[0]);
        Assert.NotEqual(bos, prompt.Ids[1]);
        Assert.Equal(prompt.Ids, encoder.EncodeRendered(prompt.Rendered));
    }

    [Fact]
    public void Encode_SystemPrompt_PrependedOnlyWhenTheConversationHasNone()
    {
        var encoder = PromptEncoder.Load(TemplatedBos, systemPrompt: "Be brief.");

        var added = encoder.Encode([new Turn("user", "Hi")]);
        var kept = encoder.Encode([new Turn("system", "Be long."), new Turn("user", "Hi")]);

        Assert.Contains("<start_of_turn>system\nBe brief.<end_of_turn>", added.Rendered, StringComparison.Ordinal);
        Assert.DoesNotContain("Be brief.", kept.Rendered, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_EosIds_TokenizerThenGenerationConfigThenConfig()
    {
        string dir = Variant(_ => { });
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), """{"eos_token_id": [0, 7]}""");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config["eos_token_id"] = new JsonArray(0, 9);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());

        var encoder = PromptEncoder.Load(dir);

        Assert.Equal([0, 7, 9], encoder.EosTokenIds);
        Assert.Equal(0, encoder.EosTokenId);
        Assert.Equal([5, 7], encoder.Terminate([5, 7, 8]));      // up to the first EOS of any kind
        Assert.Equal([5, 6, 0], encoder.Terminate([5, 6]));       // a cut sample gets the tokenizer's EOS
    }

    [Fact]
    public void Encode_ConversationWithoutTemplate_RefusedNamingTheCause()
    {
        var encoder = PromptEncoder.Load(TemplatedBos, ChatTemplateMode.Never);

        var ex = Assert.Throws<InvalidDataException>(() => encoder.Encode([new Turn("system", "s"), new Turn("user", "u")]));

        Assert.Contains("needs a chat template", ex.Message, StringComparison.Ordinal);
    }
}
