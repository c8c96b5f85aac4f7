using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Runtime;

/// <summary>
/// Activation checkpointing (Chen et al., 2016, "Training Deep Nets with Sublinear Memory Cost"): a block's forward runs
/// without keeping its intermediate activations; the backward pass runs it again from its saved input and back-propagates
/// through that recomputation. Built on TorchSharp's custom autograd functions (<c>torch.autograd.SingleTensorFunction</c>,
/// libtorch's reentrant backward), as PyTorch's reentrant <c>torch.utils.checkpoint</c> is: the block's parameters get
/// their gradients from the inner backward pass, the input its gradient from the function. The generator the block's
/// dropout draws from (a LoRA adapter's own) is saved before the forward and set back for the recomputation, so dropout
/// draws the same masks twice; afterwards it returns to where it stood, so later draws are what they would be without
/// checkpointing. Torch's process-wide generator is never touched (another training in the process may be drawing from
/// it): a block must draw only from the generator it is given.
/// </summary>
public static class ActivationCheckpoint
{
    /// <summary>
    /// <paramref name="block"/>(<paramref name="input"/>) without keeping the block's activations for the backward pass.
    /// Tensors the block reads besides its input (rotary tables, masks) must stay alive until the backward pass: pass
    /// handles the caller does not dispose (<see cref="Keep"/>).
    /// </summary>
    /// <param name="block">The computation; called twice (forward, and again in the backward pass).</param>
    /// <param name="input">The block's input. [..] any dtype; made a leaf that requires grad when it does not, so the
    /// parameters inside still get gradients (a frozen embedding's output under LoRA).</param>
    /// <param name="generator">The generator every random draw of the block comes from, replayed in the recomputation; null
    /// when the block draws nothing.</param>
    public static Tensor Apply(Func<Tensor, Tensor> block, Tensor input, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(block);
        ArgumentNullException.ThrowIfNull(input);
        if (!is_grad_enabled()) return block(input);
        var x = input.requires_grad ? input : input.detach().requires_grad_(true);
        return CheckpointFunction.apply(new Recompute(block, generator), x);
    }

    /// <summary>A new handle on <paramref name="tensor"/> outside every dispose scope, for a block's closure (freed by the GC after the backward pass).</summary>
    public static Tensor? Keep(Tensor? tensor) => tensor?.detach().DetachFromDisposeScope();

    private sealed class Recompute(Func<Tensor, Tensor> block, Generator? generator)
    {
        public Func<Tensor, Tensor> Block { get; } = block;

        public Generator? Generator { get; } = generator;

        /// <summary>The generator's state before the forward pass. [5056] uint8 (mt19937's state) on the CPU</summary>
        public Tensor? RngState { get; set; }
    }

    private sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
    {
        public override string Name => "ActivationCheckpoint";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var recompute = (Recompute)vars[0];
            var x = (Tensor)vars[1];
            recompute.RngState = recompute.Generator?.get_state().DetachFromDisposeScope();
            ctx.save_for_backward([x]);
            ctx.save_data("recompute", recompute);
            return recompute.Block(x); // runs with grad off: no activations kept
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var recompute = (Recompute)ctx.get_data("recompute");
            using var scope = NewDisposeScope();
            var saved = ctx.get_saved_variables()[0];
            var x = saved.detach().requires_grad_(true);
            var generator = recompute.Generator;
            var now = generator?.get_state();
            Tensor grad;
            using (enable_grad())
            {
                if (generator is not null) generator.set_state(recompute.RngState!);
                var y = recompute.Block(x);
                if (generator is not null) generator.set_state(now!);
                autograd.backward([y], [grad_output]);
            }
            grad = x.grad ?? zeros_like(x);
            recompute.RngState?.Dispose();
            return [null!, grad.MoveToOuterDisposeScope()]; // one per argument of apply: none for the closure
        }
    }
}
