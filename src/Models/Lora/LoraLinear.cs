using PrefPipe.Models.Decoders.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Lora;

/// <summary>
/// One LoRA adapter on a linear layer (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"):
/// Δ(x) = scaling · B·A·dropout(x), with A [r, in] and B [out, r] in float32 as PEFT keeps them (its adapters are upcast
/// beside a bf16 base), the result cast back to the layer's dtype. A starts as PEFT's (kaiming-uniform with a = √5, i.e.
/// U(−1/√in, 1/√in)) and B as zeros, so a fresh adapter changes nothing. A's initial values and the dropout masks come
/// from the adapter's own generator, never torch's process-wide one, so trainings running side by side in one process each
/// draw what they would draw alone.
/// </summary>
internal sealed class LoraLinear : nn.Module, ILinearDelta
{
    private readonly Parameter lora_A;
    private readonly Parameter lora_B;
    private readonly Generator _generator;

    public LoraLinear(string moduleName, HfLinear host, int rank, double scaling, double dropout, Generator generator) : base(moduleName)
    {
        ModuleName = moduleName;
        Scaling = scaling;
        Dropout = dropout;
        _generator = generator;
        var device = host.Weight.device;
        using (no_grad())
        {
            // kaiming_uniform_(a = √5) is U(−1/√in, 1/√in); drawn on the CPU, where the generator lives, then moved.
            double bound = 1 / Math.Sqrt(host.InFeatures);
            using var a = empty(new[] { (long)rank, host.InFeatures }, float32, CPU).uniform_(-bound, bound, generator); // [r, in] float32
            lora_A = new Parameter(a.to(device));
            lora_B = new Parameter(zeros(new[] { host.OutFeatures, (long)rank }, float32, device)); // [out, r] float32
        }
        RegisterComponents();
        // After RegisterComponents: the host is the model's module, not a submodule of the adapter (disposing the adapter must not dispose it).
        Host = host;
    }

    /// <summary>The layer's full name in the model ("model.layers.0.self_attn.q_proj").</summary>
    public string ModuleName { get; }

    /// <summary>The adapted layer.</summary>
    public HfLinear Host { get; }

    /// <summary>alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling { get; }

    /// <summary>Dropout probability on the branch's input while training.</summary>
    public double Dropout { get; }

    /// <summary>[r, in] float32</summary>
    public Parameter A => lora_A;

    /// <summary>[out, r] float32</summary>
    public Parameter B => lora_B;

    public Tensor Forward(Tensor input, bool training)
    {
        using var scope = NewDisposeScope();
        var x = input.to(lora_A.dtype);                                        // [..., in] float32
        if (training && Dropout > 0) x = x.mul(DropoutMask(x.shape, x.device)).mul_(1 / (1 - Dropout)); // inverted dropout, as torch's
        var delta = nn.functional.linear(nn.functional.linear(x, lora_A), lora_B) * Scaling; // [..., out] float32
        return delta.to(input.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Which inputs the branch keeps: Bernoulli(1 − dropout) from the adapter's generator. [..., in] uint8 (autograd keeps
    /// this byte mask for the backward pass, not a float copy). TorchSharp 0.107 creates CPU generators only, so on CUDA
    /// the mask is drawn on the CPU and copied over: one byte per input element per adapted layer and forward pass (for
    /// 2 × 1,024 tokens into a 4,096-wide layer, 8 MiB), and the CPU's draw on the step's critical path.
    /// </summary>
    private Tensor DropoutMask(long[] shape, Device device)
    {
        var keep = empty(shape, ScalarType.Byte, CPU).bernoulli_(1 - Dropout, _generator); // [..., in] uint8, 1 = kept
        return device.type == DeviceType.CPU ? keep : keep.to(device);
    }

    /// <summary>scaling · B·A in float32. [out, in]</summary>
    public Tensor DeltaWeight() => lora_B.matmul(lora_A).mul_(Scaling);
}
