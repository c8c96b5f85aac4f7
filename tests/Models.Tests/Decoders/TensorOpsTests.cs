using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Runtime;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

/// <summary>Tensor operations per decoding step (<see cref="TensorOps"/>) on the demo policy's shape with random weights.</summary>
public sealed class TensorOpsTests
{
    private static readonly string DemoDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    /// <summary>The demo policy's config with <paramref name="layers"/> layers, random weights N(0, 0.02²).</summary>
    private static CausalLM Demo(int layers)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(DemoDir, "config.json")))!.AsObject();
        json["num_hidden_layers"] = layers;
        using var doc = JsonDocument.Parse(json.ToJsonString());
        var config = DecoderConfig.Parse(doc.RootElement.Clone(), "demo config");
        manual_seed(5);
        var model = new CausalLM(config, ScalarType.Float32, CPU);
        using (no_grad())
        {
            foreach (var (_, p) in model.named_parameters())
            {
                if (p.dim() >= 2) p.normal_(0, 0.02);
                else p.fill_(1);
            }
        }
        model.eval();
        return model;
    }

    // Same-length prompts (no padding mask) and mixed lengths (left padding, additive masks).
    public static TheoryData<bool> Padding => new() { false, true };

    private static List<GenerationRequest> Requests(bool padded) =>
        Enumerable.Range(0, 3).Select(r => new GenerationRequest(
            Enumerable.Range(0, padded ? 5 + 3 * r : 8).Select(i => 2 + (7 * i + r) % 500).ToList(), r)).ToList();

    [Theory]
    [MemberData(nameof(Padding))]
    public void PerDecodingStep_IsPositiveAndTheSameForEveryStep(bool padded)
    {
        using var model = Demo(4);
        var generator = new TextGenerator(model, padTokenId: 1);
        var requests = Requests(padded);

        double over4 = TensorOps.PerDecodingStep(generator, requests, steps: 4);
        double over12 = TensorOps.PerDecodingStep(generator, requests, steps: 12);

        Assert.True(over4 > 0);
        Assert.Equal(over4, over12);
        Assert.Equal(Math.Floor(over4), over4); // a whole number: every step creates the same tensors
    }

    // Tensors one Llama-style layer creates per decoding step (float32, one new token, grouped kv heads), fused path,
    // counted from the code: input norm 6 (square, mean, +eps, rsqrt, x·, w·); attention 17 (qkv product, view, transpose,
    // narrow q+k, RoPE 4 (x·cos, roll, ·sin, +), narrow q, k, v; 2 cache views (index_copy_ writes in place); SDPA with
    // the query groups folded: reshape, sdpa, reshape; o_proj); residual 1; norm 6; MLP 8 (reshape, batched [gate, up]
    // product, 2 selects, silu, ·up, down_proj, view back); residual 1. With prompts of mixed lengths the padding mask
    // sends attention through repeat_interleave of k and v (2), sdpa, transpose, reshape: 2 more.
    // The modules' own projections (FuseProjections = false): 3 products and 2 RoPE passes (q, k: 17 tensors for
    // projections + RoPE instead of 11), MLP 5 (gate, up, silu, ·, down) instead of 8.
    [Theory]
    [InlineData(false, true, 39)]
    [InlineData(true, true, 41)]
    [InlineData(false, false, 42)]
    [InlineData(true, false, 44)]
    public void PerLayer_IsWhatTheLayerCodeCreates(bool padded, bool fuse, int expected)
    {
        var requests = Requests(padded);
        double Step(int layers)
        {
            using var model = Demo(layers);
            return TensorOps.PerDecodingStep(new TextGenerator(model, 1) { FuseProjections = fuse }, requests, steps: 4);
        }

        Assert.Equal(expected, Step(2) - Step(1));
    }

    [Fact]
    public void PerDecodingStep_Sampled_DoesNotGrowWithTheBatch()
    {
        // Each row's uniform draws are made once per call, not one tensor per row per step.
        using var model = Demo(2);
        var generator = new TextGenerator(model, padTokenId: 1);
        var three = Requests(padded: true);
        var twelve = Enumerable.Range(0, 4).SelectMany(i => three.Select(r => r with { Seed = r.Seed + 10 * i })).ToList();

        double small = TensorOps.PerDecodingStep(generator, three, steps: 4, sample: true);
        double large = TensorOps.PerDecodingStep(generator, twelve, steps: 4, sample: true);

        Assert.True(small > TensorOps.PerDecodingStep(generator, three, steps: 4));
        Assert.Equal(small, large);
    }

    [Theory]
    [MemberData(nameof(Padding))]
    public void PerLayer_IsLinearInTheNumberOfLayers(bool padded)
    {
        var requests = Requests(padded);
        double oneToTwo = TensorOps.PerLayerPerDecodingStep(Demo, 1, requests, layers: 1, steps: 4);
        double threeToFour = TensorOps.PerLayerPerDecodingStep(Demo, 1, requests, layers: 3, steps: 4);

        Assert.True(oneToTwo > 0);
        Assert.Equal(oneToTwo, threeToFour);
    }
}
