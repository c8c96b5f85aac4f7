using PrefPipe.Models.Decoders;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

/// <summary>The inference-time fused projections (<see cref="CausalLM.FuseProjections"/>).</summary>
public sealed class InferenceWeightsTests
{
    private static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    [Fact]
    public void FuseProjections_Llama_StacksEveryLayerAndLeavesTheParametersAsTheyAre()
    {
        using var model = CausalLM.Load(Dir("tiny-llama"), CPU);
        var names = model.named_parameters().Select(p => p.name).ToList();

        using var fused = model.FuseProjections();

        var c = model.Config;
        long q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            Assert.Equal(new[] { q + 2 * kv, c.HiddenSize }, fused.Qkv(l)!.Value.Weight.shape);
            Assert.Equal(new[] { 2L, c.HiddenSize, c.IntermediateSize }, fused.GateUp(l)!.Value.Weight.shape);
        }
        // Rows of the stack are q_proj, then k_proj, then v_proj, bit for bit.
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var stack = fused.Qkv(1)!.Value.Weight;
        Assert.True(stack.narrow(0, 0, q).eq(parameters["model.layers.1.self_attn.q_proj.weight"]).all().item<bool>());
        Assert.True(stack.narrow(0, q, kv).eq(parameters["model.layers.1.self_attn.k_proj.weight"]).all().item<bool>());
        Assert.True(stack.narrow(0, q + kv, kv).eq(parameters["model.layers.1.self_attn.v_proj.weight"]).all().item<bool>());
        Assert.True(fused.GateUp(1)!.Value.Weight[1].eq(parameters["model.layers.1.mlp.up_proj.weight"].t()).all().item<bool>());
        // Nothing registered: saving writes the family's own layout.
        Assert.Equal(names, model.named_parameters().Select(p => p.name).ToList());
        Assert.Empty(model.named_buffers());
    }

    [Fact]
    public void FuseProjections_Phi3_NeedsNoCopy()
    {
        using var model = CausalLM.Load(Dir("tiny-phi3"), CPU);
        using var fused = model.FuseProjections();

        Assert.Null(fused.Qkv(0));
        Assert.Null(fused.GateUp(0));
    }

    [Fact]
    public void FuseProjections_ProjectionWithAnAdapter_KeepsThatLayersModules()
    {
        // An adapter hooked into q_proj (as a LoRA wrapper would add parameters): stacking the bare weights would drop
        // it, so that layer must not be fused; the other layers still are.
        using var model = CausalLM.Load(Dir("tiny-llama"), CPU);
        var qProj = model.named_modules().Single(m => m.name == "model.layers.0.self_attn.q_proj").module;
        qProj.register_parameter("lora_A", new Parameter(zeros(2, model.Config.HiddenSize)));
        var upProj = model.named_modules().Single(m => m.name == "model.layers.1.mlp.up_proj").module;
        upProj.register_parameter("lora_A", new Parameter(zeros(2, model.Config.HiddenSize)));

        using var fused = model.FuseProjections();

        Assert.Null(fused.Qkv(0));
        Assert.NotNull(fused.Qkv(1));
        Assert.NotNull(fused.GateUp(0));
        Assert.Null(fused.GateUp(1));
    }

    [Fact]
    public void Generate_WithALiveLoraAdapter_EqualsTheMergedModel()
    {
        // A LoRA adapter lives in HfLinear.Delta, outside the registered modules: generation's fused fast path must see it
        // and keep those layers on their modules, or rollouts with a live adapter would silently drop it.
        using var model = CausalLM.Load(Dir("tiny-llama"), CPU);
        PrefPipe.Models.Generation.GenerationRequest[] requests = [new([5, 17, 42, 9, 77], 0), new([8, 3, 61], 1)];
        var options = new PrefPipe.Models.Generation.GenerationOptions { Greedy = true, MaxNewTokens = 10, EosTokenIds = [] };
        var generator = new PrefPipe.Models.Generation.TextGenerator(model, padTokenId: 0);
        var bare = generator.Generate(requests, options);

        using var lora = PrefPipe.Models.Lora.LoraAdapter.Load(model, Path.Combine(AppContext.BaseDirectory, "fixtures", "peft-lora", "all-linear-r4"));
        using (var fused = model.FuseProjections())
        {
            Assert.Null(fused.Qkv(0)); // every projection has an adapter: nothing is stacked
            Assert.Null(fused.GateUp(0));
        }
        var live = generator.Generate(requests, options);
        lora.Merge();
        var merged = generator.Generate(requests, options);

        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(merged[i].NewIds, live[i].NewIds);
            for (int t = 0; t < live[i].Logprobs.Count; t++)
                Assert.Equal(merged[i].Logprobs[t], live[i].Logprobs[t], 4);
        }
        // The adapter matters: without it the log-probs are others.
        Assert.Contains(Enumerable.Range(0, requests.Length), i => Math.Abs(bare[i].Logprobs[0] - live[i].Logprobs[0]) > 1e-3);
    }
}
