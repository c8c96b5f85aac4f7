using PrefPipe.Models.Llama;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Runtime;

public sealed class ActivationCheckpointTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");
    private static readonly string PeftDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "peft-lora");

    /// <summary>Next-token NLL of the fixture batch (padding included: any scalar that reaches every layer will do), and every trainable parameter's gradient.</summary>
    private static (float Loss, Dictionary<string, Tensor> Grads) LossAndGrads(bool checkpointing, bool lora)
    {
        using var model = LlamaForCausalLM.Load(TinyDir, CPU, ScalarType.Float32);
        using var adapter = lora ? LoraAdapter.Load(model, Path.Combine(PeftDir, "all-linear-r4")) : null; // its config has lora_dropout 0.05
        model.train();
        model.GradientCheckpointing = checkpointing;
        IEnumerable<(string Name, Parameter Parameter)> trainable = adapter?.Parameters() ?? model.named_parameters().Select(p => (p.name, p.parameter));
        using var file = SafeTensorsFile.Open(Path.Combine(PeftDir, "expected.safetensors"));
        using var scope = NewDisposeScope();
        var ids = file.Load("input_ids");                                                   // [3, 23] int64
        manual_seed(11);
        var logits = model.Logits(new CausalLMInput(ids, file.Load("attention_mask")));    // [3, 23, 768] float32
        var logp = logits.narrow(1, 0, ids.shape[1] - 1).log_softmax(-1);
        var loss = -logp.gather(2, ids.narrow(1, 1, ids.shape[1] - 1).unsqueeze(-1)).mean();
        loss.backward();
        var grads = trainable.ToDictionary(p => p.Name, p => p.Parameter.grad!.clone().DetachFromDisposeScope());
        return (loss.item<float>(), grads);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Backward_WithCheckpointing_GivesTheSameLossAndGradients(bool lora)
    {
        var (plainLoss, plain) = LossAndGrads(checkpointing: false, lora);
        var (checkpointedLoss, checkpointed) = LossAndGrads(checkpointing: true, lora);

        Assert.Equal(plainLoss, checkpointedLoss);
        Assert.Equal(plain.Keys.Order(), checkpointed.Keys.Order());
        Assert.Equal(lora ? 28 : 21, plain.Count);
        foreach (var (name, g) in plain)
        {
            float scale = g.abs().max().item<float>();
            Assert.True(scale > 0, $"{name} got no gradient");
            float diff = (g - checkpointed[name]).abs().max().item<float>();
            Assert.True(diff <= 1e-6f * Math.Max(1f, scale), $"{name}: max |Δgrad| = {diff} (max |grad| {scale})");
        }
    }
}
