using System.Text.Json;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Families.Llama;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders.Families;

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
    [InlineData("qwen2", """, "sliding_window": 4096, "use_sliding_window": true, "max_window_layers": 0""", 4096)]
    [InlineData("qwen2", """, "sliding_window": 4096, "use_sliding_window": true""", null)] // max_window_layers 28 ≥ layers: none slides
    [InlineData("llama", """, "sliding_window": 4096""", null)]
    public void Parse_SlidingWindow_OnlyWhereTransformersUsesIt(string modelType, string extra, int? expected)
    {
        Assert.Equal(expected, LlamaConfig.Parse(Json(modelType, extra), "config.json").SlidingWindow);
    }

    [Fact]
    public void CausalPaddingMask_Window_LetsEachQuerySeeItselfAndTheWindowMinusOneKeysBefore()
    {
        using var scope = NewDisposeScope();
        // 2 cached + 3 new positions, window 3, key 0 padding: query at absolute 2 sees keys 1..2 (0 is padding),
        // absolute 3 sees 1..3, absolute 4 sees 2..4 (transformers' sliding_window_overlay: key > query − window).
        var keyMask = tensor(new long[] { 0, 1, 1, 1, 1 }, new long[] { 1, 5 });
        var additive = CausalLM.CausalPaddingMask(keyMask, past: 2, t: 3, ScalarType.Float32, window: 3); // [1, 1, 3, 5]

        var visible = additive.eq(0).to(ScalarType.Int64).reshape(15).data<long>().ToArray();

        Assert.Equal([0L, 1, 1, 0, 0, /**/ 0, 1, 1, 1, 0, /**/ 0, 0, 1, 1, 1], visible);
    }

    [Fact]
    public void Parse_Qwen2SlidingWindow_MarksLayersFromMaxWindowLayersOn()
    {
        var config = LlamaConfig.Parse(Json("qwen2", """, "num_hidden_layers": 3, "use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1"""), "config.json");

        Assert.Equal([DecoderConfig.FullAttention, DecoderConfig.SlidingAttention, DecoderConfig.SlidingAttention], config.LayerTypes);
        Assert.Equal([false, true, true], Enumerable.Range(0, 3).Select(config.IsSliding));
    }

    private static JsonElement Bare(string modelType, string extra) => JsonDocument.Parse($$"""
        {"model_type": "{{modelType}}", "vocab_size": 64, "hidden_size": 1024, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 64{{extra}}}
        """).RootElement;

    [Theory]
    [InlineData("llama", "", 64)]       // LlamaConfig: None → num_attention_heads
    [InlineData("qwen2", "", 32)]       // Qwen2Config(num_key_value_heads=32)
    [InlineData("mistral", "", 8)]      // MistralConfig(num_key_value_heads=8)
    [InlineData("qwen2", """, "num_key_value_heads": null""", 64)] // explicit null → num_attention_heads in all
    public void Parse_NumKeyValueHeadsAbsent_UsesTransformersPerTypeDefault(string modelType, string extra, int expected)
    {
        Assert.Equal(expected, LlamaConfig.Parse(Bare(modelType, extra), "config.json").NumKeyValueHeads);
    }

    [Theory]
    [InlineData("llama", 2048)]
    [InlineData("qwen2", 32768)]
    [InlineData("mistral", 131072)] // 4096 * 32
    public void Parse_MaxPositionEmbeddingsAbsent_UsesTransformersPerTypeDefault(string modelType, int expected)
    {
        Assert.Equal(expected, LlamaConfig.Parse(Json(modelType, ""), "config.json").MaxPositionEmbeddings);
    }

    [Fact]
    public void Parse_MistralWithoutSlidingWindowKey_UsesTheDefault4096()
    {
        Assert.Equal(4096, LlamaConfig.Parse(Json("mistral", ""), "config.json").SlidingWindow);
    }

    [Theory]
    [InlineData("llama", true, true, true)]
    [InlineData("qwen2", true, false, false)]   // Qwen2Attention: q/k/v bias=True, o_proj bias=False; Qwen2MLP: no bias
    [InlineData("mistral", false, false, false)] // MistralAttention/MistralMLP: bias=False whatever the config says
    public void Parse_BiasKeys_FollowEachModelingFile(string modelType, bool qkv, bool output, bool mlp)
    {
        var config = LlamaConfig.Parse(Json(modelType, """, "attention_bias": true, "mlp_bias": true"""), "config.json");

        Assert.Equal((qkv, output, mlp), (config.AttentionQkvBias, config.AttentionOutputBias, config.MlpBias));
    }

    [Fact]
    public void Parse_PartialRotaryFactor_IsRefusedNamingTheKey()
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            Json("llama", """, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}"""), "p/config.json"));

        Assert.Contains("p/config.json: partial_rotary_factor 0.5", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RopeParametersNestedPerLayerType_IsRefusedNamingTheKey()
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            Json("qwen2", """, "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 10000.0}}"""), "n/config.json"));

        Assert.Contains("n/config.json: 'rope_parameters' is nested per layer type (full_attention)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UnknownRopeType_IsRefusedNamingIt()
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            Json("llama", """, "rope_scaling": {"type": "su", "factor": 2.0}"""), "u/config.json"));

        Assert.Contains("u/config.json: rope_scaling.rope_type 'su' is not supported", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Llama3WithoutHighFreqFactor_FailsNamingTheKey()
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            Json("llama", """, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0}"""), "l/config.json"));

        Assert.Contains("rope_parameters.high_freq_factor is missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_LegacyRopeScalingAndTopLevelTheta_ReadAsTransformers5StandardisesThem()
    {
        // Legacy keys: rope_scaling {"type": "linear"} plus a top-level rope_theta; the dict has no rope_theta of its own.
        var config = LlamaConfig.Parse(Json("llama", """, "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}"""), "config.json");

        Assert.Equal(500000.0, config.RopeTheta);
        Assert.Equal(new RopeScaling("linear", 2.0, OriginalMaxPositionEmbeddings: 2048), config.RopeScaling);
    }

    [Fact]
    public void Parse_SwishActivation_IsAcceptedAsSilu()
    {
        Assert.Equal(32, LlamaConfig.Parse(Json("llama", """, "hidden_act": "swish" """), "config.json").HiddenSize); // ACT2FN["swish"] is SiLU
    }

    [Theory]
    [InlineData("num_hidden_layers", "-2")]
    [InlineData("num_hidden_layers", "0")]
    [InlineData("vocab_size", "-64")]
    [InlineData("intermediate_size", "2.5")]
    [InlineData("head_dim", "-8")]
    public void Parse_NonPositiveSize_FailsNamingTheKeyAndValue(string key, string value)
    {
        // The later key wins, as in Python's json.
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(Json("llama", $", \"{key}\": {value}"), "m/config.json"));

        Assert.Contains($"m/config.json: '{key}' is {value}; expected a positive whole number", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"abc\"")]
    [InlineData("-1e-6")]
    [InlineData("true")]
    public void Parse_RmsNormEpsNotAPositiveNumber_FailsNamingTheKey(string value)
    {
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(Json("llama", $", \"rms_norm_eps\": {value}"), "m/config.json"));

        Assert.Contains($"m/config.json: 'rms_norm_eps' is {value}; expected a positive number", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RmsNormEpsAbsentOrNull_UsesTheDefault()
    {
        Assert.Equal(1e-6, LlamaConfig.Parse(Json("llama", ""), "config.json").RmsNormEps);
        Assert.Equal(1e-6, LlamaConfig.Parse(Json("llama", """, "rms_norm_eps": null"""), "config.json").RmsNormEps);
        Assert.Equal(1e-5, LlamaConfig.Parse(Json("llama", """, "rms_norm_eps": 1e-5"""), "config.json").RmsNormEps);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(64)]
    public void CheckTokenIds_OutsideTheVocabulary_FailsNamingTheIdAndRange(int id)
    {
        var config = LlamaConfig.Parse(Json("llama", ""), "config.json");

        var ex = Assert.Throws<ArgumentException>(() => config.CheckTokenIds([1, id], "--ids"));

        Assert.Contains($"--ids: token id {id} is outside the vocabulary; this model's ids are 0 to 63", ex.Message, StringComparison.Ordinal);
    }
}
