using PrefPipe.Models.Decoders;
using static TorchSharp.torch;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Models.Scoring;

/// <summary>A right-padded batch of prompt + completion sequences, with a mask of the completion tokens.</summary>
/// <param name="InputIds">[batch, seq] int64, padded with the pad id.</param>
/// <param name="AttentionMask">[batch, seq] int64: 1 for tokens, 0 for padding.</param>
/// <param name="CompletionMask">[batch, seq] bool: true where the token belongs to the completion (and is scored).</param>
public sealed record CompletionBatch(Tensor InputIds, Tensor AttentionMask, Tensor CompletionMask) : IDisposable
{
    /// <summary>Builds the batch; the first prompt token is never scored (nothing predicts it).</summary>
    public static CompletionBatch Build(IReadOnlyList<(IReadOnlyList<int> Prompt, IReadOnlyList<int> Completion)> items, int padTokenId, Device device)
    {
        ArgumentNullException.ThrowIfNull(items);
        int b = items.Count;
        int t = items.Max(i => i.Prompt.Count + i.Completion.Count);
        var ids = new long[b * t];
        var mask = new long[b * t];
        var completion = new bool[b * t];
        Array.Fill(ids, padTokenId);
        for (int r = 0; r < b; r++)
        {
            var (prompt, response) = items[r];
            if (prompt.Count == 0) throw new ArgumentException($"item {r}: the prompt needs at least one token", nameof(items));
            for (int i = 0; i < prompt.Count; i++) { ids[r * t + i] = prompt[i]; mask[r * t + i] = 1; }
            for (int i = 0; i < response.Count; i++)
            {
                int at = r * t + prompt.Count + i;
                ids[at] = response[i];
                mask[at] = 1;
                completion[at] = true;
            }
        }
        return new CompletionBatch(
            tensor(ids, new long[] { b, t }, int64, device).DetachFromDisposeScope(),
            tensor(mask, new long[] { b, t }, int64, device).DetachFromDisposeScope(),
            tensor(completion, new long[] { b, t }, ScalarType.Bool, device).DetachFromDisposeScope())
        { RightPadded = true };
    }

    /// <summary>
    /// True when every row's tokens come first and padding only after them (as <see cref="Build"/> makes it): causal
    /// attention alone then keeps real tokens from seeing padding, so the forward pass needs no mask tensor.
    /// </summary>
    public bool RightPadded { get; init; }

    /// <inheritdoc />
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        CompletionMask.Dispose();
    }
}

/// <summary>Per-sequence results of scoring completions.</summary>
/// <param name="LogprobSum">Σ log p(completion token | prefix) per sequence. [batch] float32 (carries gradient when asked).</param>
/// <param name="TokenCount">Completion tokens per sequence. [batch] float32</param>
/// <param name="EntropySum">Σ over completion positions of the next-token entropy, or null. [batch] float32</param>
/// <param name="TokenLogprobs">log p of each completion token, in sequence order, aligned with CompletionMask's true entries. [N] float32</param>
public sealed record CompletionScores(Tensor LogprobSum, Tensor TokenCount, Tensor? EntropySum, Tensor TokenLogprobs);

/// <summary>
/// Sequence log-probabilities of completions given prompts, and next-token entropies, computed only at completion
/// positions and in chunks of rows through the LM head, so a 150k vocabulary never materialises [batch, seq, vocab].
/// </summary>
public static class CompletionScorer
{
    /// <summary>Scores a batch. Call under <c>torch.no_grad()</c> for a reference model; leave grad on for the policy.</summary>
    /// <param name="model">The causal LM.</param>
    /// <param name="batch">Sequences and completion mask.</param>
    /// <param name="withEntropy">Also compute Σ_t H_t (MallowsPO's dispersion).</param>
    /// <param name="chunkRows">Completion positions per LM-head chunk.</param>
    public static CompletionScores Score(CausalLM model, CompletionBatch batch, bool withEntropy = false, int chunkRows = 1024)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        using var compute = ComputeClock.Measure();
        using var scope = NewDisposeScope();
        long b = batch.InputIds.shape[0], t = batch.InputIds.shape[1];
        // Right padding: pads follow every real token, so the causal mask alone hides them from real tokens.
        var hidden = model.Hidden(new CausalLMInput(batch.InputIds, batch.RightPadded ? null : batch.AttentionMask)); // [b, t, h]
        // Token at position i is predicted from hidden state i − 1.
        var targetMask = batch.CompletionMask.narrow(1, 1, t - 1);                                 // [b, t−1] bool
        var predictors = hidden.narrow(1, 0, t - 1)[targetMask];                                   // [N, h]
        var targets = batch.InputIds.narrow(1, 1, t - 1)[targetMask];                             // [N] int64
        var rowOf = arange(b, int64, batch.InputIds.device).unsqueeze(1).expand(b, t - 1)[targetMask]; // [N]
        long n = targets.shape[0];
        var tokenLogp = new List<Tensor>();
        var tokenEntropy = new List<Tensor>();
        for (long start = 0; start < n; start += chunkRows)
        {
            long count = Math.Min(chunkRows, n - start);
            var logits = model.Head(predictors.narrow(0, start, count)).to(float32);               // [count, vocab] float32
            var logp = logits.log_softmax(-1);
            tokenLogp.Add(logp.gather(1, targets.narrow(0, start, count).unsqueeze(1)).squeeze(1)); // [count]
            if (withEntropy)
                tokenEntropy.Add(logits.logsumexp(-1) - (logp.exp() * logits).sum(-1));             // [count]
        }
        var device = batch.InputIds.device;
        var perToken = n > 0 ? cat(tokenLogp, 0) : zeros(0, float32, device);                      // [N]
        var sums = zeros(b, float32, device).index_add(0, rowOf, perToken, 1.0);                          // [b]
        var counts = batch.CompletionMask.narrow(1, 1, t - 1).sum(1).to(float32);                    // [b]
        Tensor? entropy = null;
        if (withEntropy)
            entropy = zeros(b, float32, device).index_add(0, rowOf, n > 0 ? cat(tokenEntropy, 0) : zeros(0, float32, device), 1.0);
        return new CompletionScores(sums.MoveToOuterDisposeScope(), counts.MoveToOuterDisposeScope(),
            entropy?.MoveToOuterDisposeScope(), perToken.MoveToOuterDisposeScope());
    }
}
