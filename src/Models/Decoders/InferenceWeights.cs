using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders;

/// <summary>A weight matrix [out, in] and its bias [out] (or null), as nn.functional.linear takes them.</summary>
/// <param name="Weight">[out, in]</param>
/// <param name="Bias">[out], or null.</param>
internal readonly record struct LinearWeights(Tensor Weight, Tensor? Bias);

/// <summary>
/// Inference-time copies of a model's projections fused into one matrix each: q_proj, k_proj, v_proj stacked as
/// [q; k; v] (what Phi-3's qkv_proj holds) and gate_proj, up_proj as one [2, hidden, intermediate] stack for a batched
/// product, so a layer runs one matrix product where it ran three, and one where it ran two. The model's modules, names and parameters are
/// untouched (checkpoints save in the family's own layout, LoRA finds q_proj by name); these are detached snapshots,
/// valid until the weights change, so generation builds them per call (<see cref="CausalLM.FuseProjections"/>) and
/// the forward uses them only when given in <see cref="CausalLMInput.Fused"/>. Families that already store fused
/// projections (Phi-3) need no copy: their slots stay empty. Owns its tensors; dispose it.
/// </summary>
public sealed class InferenceWeights : IDisposable
{
    private readonly LinearWeights?[] _qkv;
    private readonly LinearWeights?[] _gateUp;

    internal InferenceWeights(LinearWeights?[] qkv, LinearWeights?[] gateUp)
    {
        _qkv = qkv;
        _gateUp = gateUp;
    }

    /// <summary>Fused [q; k; v] of a layer, or null (already fused in the module, or no copy made).</summary>
    internal LinearWeights? Qkv(int layer) => layer < _qkv.Length ? _qkv[layer] : null;

    /// <summary>Stacked gate and up of a layer ([2, hidden, intermediate], no bias), or null.</summary>
    internal LinearWeights? GateUp(int layer) => layer < _gateUp.Length ? _gateUp[layer] : null;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var w in _qkv.Concat(_gateUp))
        {
            w?.Weight.Dispose();
            w?.Bias?.Dispose();
        }
    }

    /// <summary>
    /// Whether every one of <paramref name="parts"/> computes exactly x·Wᵀ + b from its own weight and bias and is still
    /// the module its parent runs under that name: no child modules or extra parameters (an adapter such as LoRA hooked
    /// into the projection) and not replaced in the parent. Only then is a stack of the weights the same computation;
    /// otherwise the layer keeps its modules' own projections.
    /// </summary>
    internal static bool Plain(TorchSharp.torch.nn.Module parent, IReadOnlyList<HfLinear> parts)
    {
        var registered = parent.named_children().ToDictionary(c => c.name, c => c.module, StringComparer.Ordinal);
        return parts.All(p => registered.TryGetValue(p.GetName(), out var m) && ReferenceEquals(m, p)
            && p.Delta is null && !p.named_children().Any() && p.named_parameters().Count() == (p.Bias is null ? 1 : 2));
    }

    /// <summary>Stacks the rows of <paramref name="parts"/> ([out_i, in] weights, [out_i] biases) into one detached matrix.</summary>
    internal static LinearWeights Stack(IReadOnlyList<HfLinear> parts)
    {
        using var _ = no_grad();
        var weight = cat(parts.Select(p => (Tensor)p.Weight).ToArray(), 0).DetachFromDisposeScope();                 // [Σ out_i, in]
        Tensor? bias = parts[0].Bias is null ? null : cat(parts.Select(p => (Tensor)p.Bias!).ToArray(), 0).DetachFromDisposeScope(); // [Σ out_i]
        return new LinearWeights(weight, bias);
    }
}
