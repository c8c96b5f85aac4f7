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

    // The bench's model shapes (src/Benchmarks/ModelShapes.cs), Llama layout.
    private const string Demo = """{"model_type":"llama","vocab_size":512,"hidden_size":128,"intermediate_size":344,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"rms_norm_eps":1e-5,"rope_theta":10000.0,"max_position_embeddings":2048,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0,"pad_token_id":1}""";
    private const string Small = """{"model_type":"llama","vocab_size":32000,"hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":4,"head_dim":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"max_position_embeddings":4096,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}""";
    private const string Shape100m = """{"model_type":"llama","vocab_size":32000,"hidden_size":768,"intermediate_size":2048,"num_hidden_layers":12,"num_attention_heads":12,"num_key_value_heads":4,"head_dim":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,"max_position_embeddings":4096,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}""";

    private static DecoderConfig Shape(string name)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(name switch { "demo" => Demo, "small" => Small, _ => Shape100m });
        return DecoderConfig.Parse(doc.RootElement.Clone(), name);
    }

    /// <summary>
    /// The plan against the peaks measured by bench/cpu/lora.sh (one DPO step per process, VmHWM; bench/results/
    /// 2026-12-04-cpu-lora-2), each with the baseline that process had before the model: within 15 % on every case.
    /// </summary>
    [Theory]
    [InlineData("demo", 4, 128, 0, false, 161.39, 279.07)]
    [InlineData("demo", 4, 128, 16, false, 161.91, 288.29)]
    [InlineData("demo", 4, 128, 16, true, 161.88, 275.57)]
    [InlineData("small", 2, 128, 0, false, 161.55, 1385.85)]
    [InlineData("small", 2, 128, 0, true, 161.43, 1261.72)]
    [InlineData("small", 2, 128, 16, false, 161.47, 844.11)]
    [InlineData("small", 2, 128, 16, true, 161.62, 666.79)]
    [InlineData("small", 2, 64, 16, true, 161.11, 519.18)]
    [InlineData("small", 2, 256, 16, true, 161.36, 841.49)]
    [InlineData("100m", 2, 128, 0, false, 161.19, 2756.81)]
    [InlineData("100m", 2, 128, 16, false, 162.52, 1491.14)]
    [InlineData("100m", 2, 128, 16, true, 161.43, 1086.02)]
    public void Estimate_BenchShapesOnCpu_WithinFifteenPercentOfTheMeasuredPeak(string shape, int pairs, int length, int loraR, bool checkpointing, double baselineMiB, double peakMiB)
    {
        var lora = loraR > 0 ? new LoraOptions { R = loraR, Alpha = 2 * loraR, TargetModules = [LoraTargets.AllLinear] } : null;

        var plan = MemoryPlan.Estimate(Shape(shape), new MemoryPlanInput(pairs, length, length / 2, false, lora, checkpointing, baselineMiB * 1024 * 1024));

        double error = plan.Total / (1024 * 1024) / peakMiB - 1;
        Assert.True(Math.Abs(error) <= 0.15, $"{shape} {2 * pairs}x{length} r={loraR} ckpt={checkpointing}: plan {plan.Total / (1024 * 1024):F0} MiB vs measured {peakMiB} MiB ({error:P1})");
    }

    [Fact]
    public void Estimate_CpuBaseline_IsTheGivenProcessMemoryAndUnusedOnCuda()
    {
        var config = Shape("demo");
        MemoryPlanEstimate Plan(bool cuda, double? baseline) => MemoryPlan.Estimate(config, new MemoryPlanInput(4, 128, 64, cuda, null, false, baseline));

        Assert.Equal(100.0 * 1024 * 1024, Plan(false, 300.0 * 1024 * 1024).Runtime - Plan(false, 200.0 * 1024 * 1024).Runtime, 3);
        Assert.Equal(Plan(false, MemoryPlan.DefaultCpuBaselineBytes).Runtime, Plan(false, null).Runtime);
        Assert.Equal(Plan(true, 300.0 * 1024 * 1024).Runtime, Plan(true, null).Runtime);
        double? measured = MemoryPlan.ProcessResidentBytes();
        Assert.NotNull(measured);
        Assert.InRange(measured.Value, 50.0 * 1024 * 1024, 64.0 * 1024 * 1024 * 1024); // this test process, libtorch loaded
    }

    [Fact]
    public void Estimate_LoraDropout_KeepsTheDroppedInputAndItsByteMaskPerAdaptedLayer()
    {
        var config = Shape("demo");
        LoraOptions Lora(double dropout) => new() { R = 8, Alpha = 16, Dropout = dropout, TargetModules = ["q_proj", "v_proj"] };
        double Activations(double dropout) => MemoryPlan.Estimate(config, new MemoryPlanInput(2, 100, 50, false, Lora(dropout), false)).Activations;

        // 4 layers × 400 tokens × (q_proj's and v_proj's 128 inputs) × (4 bytes of the float32 input + 1 of the mask).
        Assert.Equal(4.0 * 400 * (128 + 128) * 5, Activations(0.1) - Activations(0), 3);
    }
}
