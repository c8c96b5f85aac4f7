using PrefPipe.Models.Decoders;
using PrefPipe.Models.Generation;
using TorchSharp;

namespace PrefPipe.Models.Runtime;

/// <summary>
/// Counts tensor operations on this thread as TorchSharp's dispose-scope statistics see them: every native call that
/// returns a tensor creates one managed <see cref="torch.Tensor"/> (views such as narrow, view, transpose included; a
/// result returned as the same object, as in-place operations like copy_ or add_ do, is not counted). So the count is
/// "tensors created": the allocating and view-making operations, not the in-place ones.
/// </summary>
public static class TensorOps
{
    /// <summary>Tensors created on this thread so far (inside and outside dispose scopes).</summary>
    public static long CreatedOnThread
    {
        get
        {
            var s = DisposeScopeManager.Statistics.TensorStatistics;
            return s.CreatedInScopeCount + s.CreatedOutsideScopeCount;
        }
    }

    /// <summary>Tensors <paramref name="action"/> creates on this thread.</summary>
    public static long Count(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        long before = CreatedOnThread;
        action();
        return CreatedOnThread - before;
    }

    /// <summary>
    /// Tensors one decoding step of <paramref name="generator"/> creates: generation of 1 + <paramref name="steps"/> new
    /// tokens minus generation of 1 (prompt, prefill and first token cancel out), divided by <paramref name="steps"/>.
    /// Greedy unless <paramref name="sample"/>; no end-of-sequence ids, so every request runs every step. The host reads of generated tokens count where
    /// they happen (every step on CPU, every 16 on CUDA): use a multiple of 16 for <paramref name="steps"/>.
    /// </summary>
    /// <param name="generator">The generator to measure.</param>
    /// <param name="requests">The batch.</param>
    /// <param name="steps">Decoding steps the difference covers.</param>
    /// <param name="sample">Sample at temperature 1 (no top-k/top-p) instead of greedy.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="steps"/> is not positive.</exception>
    public static double PerDecodingStep(TextGenerator generator, IReadOnlyList<GenerationRequest> requests, int steps = 16, bool sample = false)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        var one = new GenerationOptions { MaxNewTokens = 1, Greedy = !sample, EosTokenIds = [] };
        var more = new GenerationOptions { MaxNewTokens = 1 + steps, Greedy = !sample, EosTokenIds = [] };
        long first = Count(() => generator.Generate(requests, one));
        long all = Count(() => generator.Generate(requests, more));
        return (double)(all - first) / steps;
    }

    /// <summary>
    /// Tensors per decoder layer per decoding step: the per-step count of a model with <paramref name="layers"/> + 1
    /// layers minus that of one with <paramref name="layers"/>, both built by <paramref name="create"/> (same config
    /// otherwise), so everything outside the layers (embedding, final norm, head, sampling, masks, RoPE tables) cancels.
    /// </summary>
    public static double PerLayerPerDecodingStep(Func<int, CausalLM> create, int padTokenId, IReadOnlyList<GenerationRequest> requests, int layers = 1, int steps = 16)
    {
        ArgumentNullException.ThrowIfNull(create);
        double Step(int n)
        {
            using var model = create(n);
            model.eval();
            return PerDecodingStep(new TextGenerator(model, padTokenId), requests, steps);
        }
        return Step(layers + 1) - Step(layers);
    }
}
