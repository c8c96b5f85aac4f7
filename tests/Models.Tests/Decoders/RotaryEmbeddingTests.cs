using System.Text.Json;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Families.Llama;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

public sealed class RotaryEmbeddingTests
{
    // head_dim 8 (hidden 32 / 4 heads), rope_theta 10000: the default inverse frequencies are 10000^-(0, 2, 4, 6)/8 = 1, 0.1, 0.01, 0.001.
    private static LlamaConfig Config(string rope, int maxPositions = 128) => LlamaConfig.Parse(JsonDocument.Parse($$"""
        {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": {{maxPositions}}, "rope_parameters": {{rope}}}
        """).RootElement, "rope/config.json");

    private static float[] Inv(LlamaConfig config, out double scaling)
    {
        var (inv, s) = RotaryEmbedding.InverseFrequencies(config);
        using (inv)
        {
            scaling = s;
            return inv.data<float>().ToArray();
        }
    }

    private static void Close(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Abs(expected[i]) + 1e-9, $"[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void InverseFrequencies_Yarn_MatchesModelingRopeUtilsAndScalesAttention()
    {
        // factor 4, original_max 32, beta_fast 32 / beta_slow 1 (defaults), truncate (default):
        // correction dim(r) = 8·ln(32 / (r·2π)) / (2·ln 10000): r=32 → −0.798 → floor → −1 → max 0; r=1 → 0.707 → ceil → 1.
        // ramp over i = 0..3 is clamp((i − 0) / (1 − 0)) = 0, 1, 1, 1, so extrapolation weight = 1, 0, 0, 0:
        // inv = 1 (extrapolated), then the interpolated 0.1/4, 0.01/4, 0.001/4. attention = 0.1·ln 4 + 1 = 1.1386294361.
        var config = Config("""{"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32}""");

        var inv = Inv(config, out double scaling);

        Close([1, 0.025, 0.0025, 0.00025], inv);
        Assert.Equal(1.1386294361, scaling, 9);
    }

    [Fact]
    public void Compute_Yarn_MultipliesCosAndSinByTheAttentionFactor()
    {
        var config = Config("""{"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32}""");
        using var rotary = new RotaryEmbedding(config, CPU);
        using var scope = NewDisposeScope();

        var (cos, sin) = rotary.Compute(tensor(new long[] { 1 }, new long[] { 1, 1 }), ScalarType.Float32); // position 1

        // Frequency 0 is 1 rad at position 1: cos = cos(1)·1.1386294 = 0.6152041, signed sin (first half) = −sin(1)·1.1386294 = −0.9581236.
        Assert.Equal(0.6152041, cos[0, 0, 0, 0].item<float>(), 5);
        Assert.Equal(-0.9581236, sin[0, 0, 0, 0].item<float>(), 5);
    }

    [Fact]
    public void Parse_Llama3WithoutOriginalMax_DefaultsToMaxPositionEmbeddingsAsTransformers()
    {
        // standardize_rope_params: original_max_position_embeddings defaults to max_position_embeddings (64), not 8192.
        // low/high wavelen = 64/1, 64/4 = 64, 16; wavelen = 2π/inv = 6.28, 62.8, 628, 6283:
        // 6.28 < 16 keeps 1; 62.8 is medium: s = (64/62.83 − 1)/3 = 0.0061973, (1 − s)·0.1/8 + s·0.1 = 0.0130423;
        // 628 and 6283 > 64 are divided by 8: 0.00125, 0.000125. (With 8192 only the last would change.)
        var config = Config("""{"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}""", maxPositions: 64);

        var inv = Inv(config, out double scaling);

        Assert.Equal(64, config.RopeScaling!.OriginalMaxPositionEmbeddings);
        Close([1, 0.013042256043820465, 0.00125, 0.000125], inv);
        Assert.Equal(1.0, scaling);
    }

    [Fact]
    public void InverseFrequencies_Linear_DividesByTheFactor()
    {
        var inv = Inv(Config("""{"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}"""), out _);

        Close([0.5, 0.05, 0.005, 0.0005], inv); // 1, 0.1, 0.01, 0.001 over 2
    }

    [Fact]
    public void InverseFrequencies_LongRope_UsesShortFactorsAndSqrtAttentionFactor()
    {
        // inv = 1 / (short_factor · 10000^(2i/8)); factor = 128/32 = 4 (max/original), attention = sqrt(1 + ln 4 / ln 32) = 1.1832160.
        var inv = Inv(Config("""{"rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 32, "short_factor": [1.0, 2.0, 4.0, 8.0], "long_factor": [1.0, 1.0, 1.0, 1.0]}"""), out double scaling);

        Close([1, 0.05, 0.0025, 0.000125], inv);
        Assert.Equal(Math.Sqrt(1 + Math.Log(4) / Math.Log(32)), scaling, 9);
    }

    [Fact]
    public void Hidden_DynamicRopeBeyondMaxPositions_IsRefusedAndWithinIsDefault()
    {
        var config = Config("""{"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}""", maxPositions: 8);
        using var model = new CausalLM(config, ScalarType.Float32, CPU);
        using var scope = NewDisposeScope();

        Close([1, 0.1, 0.01, 0.001], Inv(config, out _)); // base · (2·8/8 − 1)^(8/6) = base: the default table
        Assert.Equal([1L, 8L, 32L], model.Hidden(new CausalLMInput(arange(8, ScalarType.Int64).unsqueeze(0))).shape);
        var ex = Assert.Throws<NotSupportedException>(() => model.Hidden(new CausalLMInput(arange(9, ScalarType.Int64).unsqueeze(0))));
        Assert.Contains("rope_type 'dynamic'", ex.Message, StringComparison.Ordinal);
    }
}
