using System.Text.Json;
using PrefPipe.Models.Llama;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Llama;

public sealed class LlamaConfigTests
{
    // extra may repeat a key (hidden_act); the later one wins, as in Python's json.
    private static JsonElement Json(string modelType, string extra) => JsonDocument.Parse($$"""
        {"model_type": "{{modelType}}", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu"{{extra}}}
        """).RootElement;

    [Fact]
    public void Parse_OtherActivation_FailsNamingTheKeyAndValue()
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(Json("llama", """, "hidden_act": "gelu_pytorch_tanh" """), "gemma-like/config.json"));

        Assert.Contains("gemma-like/config.json: hidden_act 'gelu_pytorch_tanh'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mistral", """, "sliding_window": 4096""", 4096)]
    [InlineData("mistral", """, "sliding_window": null""", null)]
    [InlineData("qwen2", """, "sliding_window": 32768, "use_sliding_window": false""", null)]
    [InlineData("qwen2", """, "sliding_window": 4096, "use_sliding_window": true""", 4096)]
    [InlineData("llama", """, "sliding_window": 4096""", null)]
    public void Parse_SlidingWindow_OnlyWhereTransformersUsesIt(string modelType, string extra, int? expected)
    {
        Assert.Equal(expected, LlamaConfig.Parse(Json(modelType, extra), "config.json").SlidingWindow);
    }

    [Fact]
    public void Hidden_LongerThanTheSlidingWindow_IsRefusedNotSilentlyDifferent()
    {
        var config = LlamaConfig.Parse(Json("mistral", """, "sliding_window": 8"""), "mistral-tiny/config.json");
        using var model = new LlamaForCausalLM(config, ScalarType.Float32, CPU);
        using var scope = NewDisposeScope();

        var within = model.Hidden(new CausalLMInput(arange(8, ScalarType.Int64).unsqueeze(0)));                // [1, 8]: the window changes nothing
        Assert.Equal([1L, 8L, 32L], within.shape);
        var ex = Assert.Throws<NotSupportedException>(() => model.Hidden(new CausalLMInput(arange(9, ScalarType.Int64).unsqueeze(0))));
        Assert.Contains("9 tokens exceed this mistral model's sliding_window of 8", ex.Message, StringComparison.Ordinal);
    }
}
