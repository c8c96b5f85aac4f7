using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Runtime;

public sealed class ActivationCheckpointTests
{
    private static readonly string PeftDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "peft-lora");

    private static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    /// <summary>
    /// Next-token NLL of the fixture batch (padding included: any scalar that reaches every layer will do), and every
    /// trainable parameter's gradient, and the state the adapter's generator is left in. LoRA on tiny-llama is the PEFT
    /// fixture adapter (lora_dropout 0.05); on another family a fresh all-linear adapter with dropout 0.1 and B drawn at
    /// random (a fresh B = 0 would give A no gradient). Every draw comes from a generator of this call, so the test needs
    /// no other test to keep off torch's global generator.
    /// </summary>
    private static (float Loss, Dictionary<string, Tensor> Grads, byte[]? Rng) LossAndGrads(string family, bool checkpointing, bool lora)
    {
        using var model = CausalLM.Load(Dir(family), CPU, ScalarType.Float32);
        LoraAdapter? adapter = null;
        if (lora && family == "tiny-llama") adapter = LoraAdapter.Load(model, Path.Combine(PeftDir, "all-linear-r4"));
        else if (lora)
        {
            adapter = LoraAdapter.Inject(model, new LoraOptions { R = 4, Alpha = 8, Dropout = 0.1, TargetModules = ["all-linear"] }, seed: 7);
            using var noGrad = no_grad();
            using var b = new Generator(8);
            foreach (var (name, p) in adapter.Parameters().Where(p => p.Name.Contains("lora_B", StringComparison.Ordinal))) p.normal_(0, 0.05, b);
        }
        using (adapter)
        {
            model.train();
            model.GradientCheckpointing = checkpointing;
            IEnumerable<(string Name, Parameter Parameter)> trainable = adapter?.Parameters() ?? model.named_parameters().Select(p => (p.name, p.parameter));
            using var file = SafeTensorsFile.Open(family == "tiny-llama" ? Path.Combine(PeftDir, "expected.safetensors") : Path.Combine(Dir(family), "reference.safetensors"));
            using var scope = NewDisposeScope();
            var ids = file.Load("input_ids");                                                   // [3, T] int64
            var logits = model.Logits(new CausalLMInput(ids, file.Load("attention_mask")));    // [3, T, vocab] float32
            var logp = logits.narrow(1, 0, ids.shape[1] - 1).log_softmax(-1);
            var loss = -logp.gather(2, ids.narrow(1, 1, ids.shape[1] - 1).unsqueeze(-1)).mean();
            loss.backward();
            var grads = trainable.ToDictionary(p => p.Name, p => p.Parameter.grad!.clone().DetachFromDisposeScope());
            return (loss.item<float>(), grads, adapter?.Generator.get_state().data<byte>().ToArray());
        }
    }

    /// <summary>
    /// tiny-llama; tiny-gemma3 (sliding-window layers with their own RoPE base and mask, the embedding scale, per-head
    /// q/k norms, four norms per layer, tied embeddings); tiny-phi3 (fused qkv_proj and gate_up_proj, longrope).
    /// </summary>
    [Theory]
    [InlineData("tiny-llama", false, 21)]
    [InlineData("tiny-llama", true, 28)]
    [InlineData("tiny-gemma3", false, 4 * 13 + 2)]
    [InlineData("tiny-gemma3", true, 4 * 7 * 2)]
    [InlineData("tiny-phi3", false, 2 * 6 + 3)]
    [InlineData("tiny-phi3", true, 2 * 4 * 2)]
    public void Backward_WithCheckpointing_GivesTheSameLossAndGradients(string family, bool lora, int trainable)
    {
        var (plainLoss, plain, plainRng) = LossAndGrads(family, checkpointing: false, lora);
        var (checkpointedLoss, checkpointed, checkpointedRng) = LossAndGrads(family, checkpointing: true, lora);

        Assert.Equal(plainLoss, checkpointedLoss);
        // The recomputation replays the masks and then puts the generator back: later draws are the plain run's.
        Assert.Equal(plainRng, checkpointedRng);
        Assert.Equal(plain.Keys.Order(), checkpointed.Keys.Order());
        Assert.Equal(trainable, plain.Count);
        foreach (var (name, g) in plain)
        {
            float scale = g.abs().max().item<float>();
            Assert.True(scale > 0, $"{family} {name} got no gradient");
            float diff = (g - checkpointed[name]).abs().max().item<float>();
            Assert.True(diff <= 1e-6f * Math.Max(1f, scale), $"{family} {name}: max |Δgrad| = {diff} (max |grad| {scale})");
        }
    }
}
