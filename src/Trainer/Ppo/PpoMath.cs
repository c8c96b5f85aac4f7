using static TorchSharp.torch;

namespace PrefPipe.Trainer.Ppo;

/// <summary>
/// The arithmetic of PPO for language models, on [batch, response] tensors with a response mask (1 = a generated token,
/// 0 = padding after the end). Standard RLHF as in Ziegler et al. 2019 (arXiv 1909.08593) and Ouyang et al. 2022; TRL's
/// PPO trainer uses the same definitions, and its metric names are used by the trainer.
/// </summary>
public static class PpoMath
{
    /// <summary>Mean over positions where <paramref name="mask"/> is 1.</summary>
    public static Tensor MaskedMean(Tensor values, Tensor mask) => (values * mask).sum() / mask.sum().clamp_min(1);

    /// <summary>Variance over masked positions with Bessel's correction (as TRL's masked_var).</summary>
    public static Tensor MaskedVar(Tensor values, Tensor mask)
    {
        var mean = MaskedMean(values, mask);
        var centred = (values - mean).square();
        var variance = MaskedMean(centred, mask);
        var n = mask.sum();
        return variance * n / (n - 1).clamp_min(1);
    }

    /// <summary>(x − mean)/sqrt(var + 1e-8) over masked positions; <paramref name="shiftMean"/> false adds the mean back.</summary>
    public static Tensor MaskedWhiten(Tensor values, Tensor mask, bool shiftMean = true)
    {
        var mean = MaskedMean(values, mask);
        var whitened = (values - mean) * (MaskedVar(values, mask) + 1e-8).rsqrt();
        return shiftMean ? whitened : whitened + mean;
    }

    /// <summary>
    /// Per-token rewards: r_t = −β_KL·(log π_θ − log π_ref) at every response token, plus the sequence score at the last
    /// response token. Returns rewards [B, T] and the per-token KL estimate (k1 = log π_θ − log π_ref) [B, T].
    /// </summary>
    /// <param name="logprobs">log π_θ of the sampled tokens. [B, T]</param>
    /// <param name="refLogprobs">log π_ref of the same tokens. [B, T]</param>
    /// <param name="scores">Reward-model score per sequence (after any missing-EOS penalty). [B]</param>
    /// <param name="mask">Response mask. [B, T] float</param>
    /// <param name="klCoefficient">β_KL.</param>
    public static (Tensor Rewards, Tensor Kl) TokenRewards(Tensor logprobs, Tensor refLogprobs, Tensor scores, Tensor mask, double klCoefficient)
    {
        var kl = (logprobs - refLogprobs) * mask;                               // [B, T]
        var rewards = -klCoefficient * kl;                                      // [B, T]
        var lastIndex = (mask.sum(1) - 1).clamp_min(0).to(int64).unsqueeze(1); // [B, 1]
        var atEnd = zeros_like(rewards).scatter_(1, lastIndex, scores.unsqueeze(1).to(rewards.dtype)); // [B, T]
        return (rewards + atEnd, kl);
    }

    /// <summary>
    /// Generalised advantage estimation backwards over the response: δ_t = r_t + γ·V_{t+1} − V_t,
    /// A_t = δ_t + γλ·A_{t+1}; V beyond the last response token is 0. Returns advantages and returns (A + V), [B, T], masked.
    /// </summary>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, Tensor mask, double gamma, double lambda)
    {
        long t = rewards.shape[1];
        var v = values * mask;
        var r = rewards * mask;
        var lastGae = zeros(rewards.shape[0], rewards.dtype, rewards.device); // [B]
        var columns = new Tensor[t];
        for (long i = t - 1; i >= 0; i--)
        {
            var nextValue = i + 1 < t ? v[.., i + 1] : zeros_like(lastGae);
            var delta = r[.., i] + gamma * nextValue - v[.., i];
            lastGae = (delta + gamma * lambda * lastGae) * mask[.., i];
            columns[i] = lastGae;
        }
        var advantages = stack(columns, 1);                                     // [B, T]
        return (advantages, (advantages + v) * mask);
    }

    /// <summary>Clipped surrogate policy loss and the fraction of tokens where clipping was active (policy/clipfrac).</summary>
    public static (Tensor Loss, Tensor ClipFraction, Tensor ApproxKl) PolicyLoss(Tensor newLogprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask, double clipRange)
    {
        var logRatio = newLogprobs - oldLogprobs;                               // [B, T]
        var ratio = logRatio.exp();
        var unclipped = -advantages * ratio;
        var clipped = -advantages * ratio.clamp(1 - clipRange, 1 + clipRange);
        var loss = MaskedMean(maximum(unclipped, clipped), mask);
        var clipFraction = MaskedMean((clipped > unclipped).to(newLogprobs.dtype), mask);
        var approxKl = 0.5 * MaskedMean(logRatio.square(), mask);
        return (loss, clipFraction.detach(), approxKl.detach());
    }

    /// <summary>Clipped value loss 0.5·mean(max((V − R)², (clip(V, V_old ± c) − R)²)) and its clip fraction.</summary>
    public static (Tensor Loss, Tensor ClipFraction) ValueLoss(Tensor newValues, Tensor oldValues, Tensor returns, Tensor mask, double clipRange)
    {
        var clippedValues = oldValues + (newValues - oldValues).clamp(-clipRange, clipRange);
        var unclipped = (newValues - returns).square();
        var clipped = (clippedValues - returns).square();
        var loss = 0.5 * MaskedMean(maximum(unclipped, clipped), mask);
        var clipFraction = MaskedMean((clipped > unclipped).to(newValues.dtype), mask);
        return (loss, clipFraction.detach());
    }

    /// <summary>Entropy of the next-token distribution from logits, per position. [B, T]</summary>
    public static Tensor Entropy(Tensor logits) => logits.logsumexp(-1) - (logits.softmax(-1) * logits).sum(-1);
}

/// <summary>β_KL: fixed, or adapted toward a target KL (Ziegler et al. 2019): β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon).</summary>
public sealed class KlController
{
    private readonly double? _target;
    private readonly double _horizon;

    /// <summary>Creates a controller; <paramref name="target"/> null keeps β fixed.</summary>
    public KlController(double initial, double? target = null, double horizon = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initial);
        Value = initial;
        _target = target;
        _horizon = horizon;
    }

    /// <summary>Current β_KL.</summary>
    public double Value { get; private set; }

    /// <summary>Updates β from the KL measured over <paramref name="steps"/> samples.</summary>
    public void Update(double currentKl, long steps)
    {
        if (_target is not double target || target <= 0) return;
        double error = Math.Clamp(currentKl / target - 1, -0.2, 0.2);
        Value *= 1 + error * steps / _horizon;
    }

    /// <summary>Restores β (resume).</summary>
    public void Restore(double value) => Value = value;
}
