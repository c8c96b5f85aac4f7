using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Runtime;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Runtime;

public sealed class MemoryPlanTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");

    [Theory]
    [InlineData("tiny-llama", "")]
    [InlineData("tiny-llama", "all-linear")]
    [InlineData("tiny-llama", "q_proj,v_proj")]
    [InlineData("tiny-phi3", "")]
    [InlineData("tiny-phi3", "all-linear")]
    [InlineData("tiny-phi3", "qkv_proj")]
    [InlineData("tiny-gemma3", "")]
    [InlineData("tiny-gemma3", "all-linear")]
    [InlineData("tiny-gemma3", "q_proj,v_proj")]
    [InlineData("tiny-olmo2", "all-linear")]
    [InlineData("tiny-qwen3", "all-linear")]
    public void Estimate_CountsTheParametersTheModelAndAdapterHave(string family, string targetList)
    {
        string[]? targets = targetList.Length == 0 ? null : targetList.Split(',');
        using var model = CausalLM.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", family), CPU, ScalarType.Float32);
        var lora = targets is null ? null : new LoraOptions { R = 4, Alpha = 8, TargetModules = targets };
        using var adapter = lora is null ? null : LoraAdapter.Inject(model, lora, seed: 0);

        var plan = MemoryPlan.Estimate(model.Config, new MemoryPlanInput(2, 64, 16, false, lora, false));

        Assert.Equal(model.parameters().Sum(p => p.numel()), plan.Parameters);
        Assert.Equal(adapter?.ParameterCount ?? plan.Parameters, plan.Trainable);
        Assert.Equal(plan.Trainable * 4.0 * 3, plan.OptimizerStates); // two float32 moments and the flattened weights' first storage
    }

    [Fact]
    public void Estimate_CheckpointingAndLora_ShrinkTheirParts()
    {
        var config = DecoderConfig.Load(TinyDir);
        var lora = new LoraOptions { R = 8, TargetModules = ["all-linear"] };
        var full = MemoryPlan.Estimate(config, new MemoryPlanInput(4, 256, 128, false, null, false));
        var ckpt = MemoryPlan.Estimate(config, new MemoryPlanInput(4, 256, 128, false, null, true));
        var adapters = MemoryPlan.Estimate(config, new MemoryPlanInput(4, 256, 128, false, lora, false));

        Assert.True(ckpt.Activations < full.Activations);
        Assert.Equal(full.Logits, ckpt.Logits);
        Assert.True(adapters.Gradients < full.Gradients / 5 && adapters.OptimizerStates < full.OptimizerStates / 5);
        Assert.True(adapters.Weights > full.Weights); // the adapters add to the frozen weights
    }
}
