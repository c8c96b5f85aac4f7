using PrefPipe.Trainer.Ppo;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests.Ppo;

/// <summary>
/// PPO arithmetic on a hand-made batch of two responses (lengths 3 and 4, T = 4). Expected values were computed by hand
/// from the textbook definitions (Python floats, independent of this code): γ = 1, λ = 0.95, β_KL = 0.1, ε = 0.2.
/// </summary>
public sealed class PpoMathTests
{
    private static Tensor T(double[,] values) => tensor(values, float64);

    private static readonly double[,] Logprobs = { { -1.0, -0.5, -2.0, 0.0 }, { -0.3, -1.2, -0.7, -0.9 } };
    private static readonly double[,] RefLogprobs = { { -1.2, -0.4, -1.5, 0.0 }, { -0.3, -1.0, -0.9, -1.1 } };
    private static readonly double[,] Mask = { { 1, 1, 1, 0 }, { 1, 1, 1, 1 } };
    private static readonly double[,] Values = { { 0.5, 0.2, -0.1, 0.9 }, { 0.0, 0.3, 0.1, -0.2 } };

    private static void Close(double[] expected, Tensor actual, int digits = 9)
    {
        var a = actual.data<double>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++) Assert.Equal(expected[i], a[i], digits);
    }

    private static (Tensor Rewards, Tensor Kl) Rewards() =>
        PpoMath.TokenRewards(T(Logprobs), T(RefLogprobs), tensor(new[] { 2.0, -1.0 }, float64), T(Mask), 0.1);

    [Fact]
    public void TokenRewards_KlPenaltyEverywhereAndScoreAtLastToken()
    {
        using var scope = NewDisposeScope();
        var (rewards, kl) = Rewards();

        Close([-0.02, 0.01, 2.05, 0, 0, 0.02, -0.02, -1.02], rewards.flatten());
        Close([0.2, -0.1, -0.5, 0, 0, -0.2, 0.2, 0.2], kl.flatten());
    }

    [Fact]
    public void Gae_MatchesHandComputedAdvantagesAndReturns()
    {
        using var scope = NewDisposeScope();
        var (advantages, returns) = PpoMath.Gae(Rewards().Rewards, T(Values), T(Mask), gamma: 1.0, lambda: 0.95);

        Close([1.344875, 1.7525, 2.15, 0.0, -0.8628475, -1.22405, -1.099, -0.82], advantages.flatten());
        Close([1.844875, 1.9525, 2.05, 0.0, -0.8628475, -0.92405, -0.999, -1.02], returns.flatten());
    }

    [Fact]
    public void PolicyLoss_ClippedSurrogate_MatchesHandComputed()
    {
        using var scope = NewDisposeScope();
        var (advantages, _) = PpoMath.Gae(Rewards().Rewards, T(Values), T(Mask), 1.0, 0.95);
        var newLogprobs = T(new[,] { { -0.9, -0.6, -1.5, 0.0 }, { -0.2, -1.4, -0.7, -0.5 } });

        var (loss, clipFraction, approxKl) = PpoMath.PolicyLoss(newLogprobs, T(Logprobs), advantages, T(Mask), 0.2);

        Assert.Equal(-0.19628381706425466, loss.item<double>(), 9);
        Assert.Equal(1.0 / 7, clipFraction.item<double>(), 9);
        Assert.Equal(0.03428571428571429, approxKl.item<double>(), 9);
    }

    [Fact]
    public void ValueLoss_ClippedAroundOldValues_MatchesHandComputed()
    {
        using var scope = NewDisposeScope();
        var (_, returns) = PpoMath.Gae(Rewards().Rewards, T(Values), T(Mask), 1.0, 0.95);
        var newValues = T(new[,] { { 0.7, 0.1, 0.5, 0.0 }, { 0.2, 0.3, -0.3, 0.4 } });

        var (loss, clipFraction) = PpoMath.ValueLoss(newValues, T(Values), returns, T(Mask), 0.2);

        Assert.Equal(0.9998242304558035, loss.item<double>(), 9);
        Assert.Equal(2.0 / 7, clipFraction.item<double>(), 9);
    }

    [Fact]
    public void MaskedWhiten_UsesMaskedMeanAndUnbiasedVariance()
    {
        using var scope = NewDisposeScope();
        var (advantages, _) = PpoMath.Gae(Rewards().Rewards, T(Values), T(Mask), 1.0, 0.95);

        var whitened = PpoMath.MaskedWhiten(advantages, T(Mask));

        Assert.Equal(0.781092701770534, whitened[0, 0].item<double>(), 9);
        Assert.Equal(0, PpoMath.MaskedMean(whitened, T(Mask)).item<double>(), 9);
    }

    [Fact]
    public void KlController_AdaptiveMovesTowardTargetAndFixedStays()
    {
        var adaptive = new KlController(0.1, target: 6, horizon: 10_000);
        adaptive.Update(currentKl: 12, steps: 512);   // error clipped to +0.2 → β·(1 + 0.2·512/10000)
        Assert.Equal(0.1 * (1 + 0.2 * 512 / 10_000.0), adaptive.Value, 12);
        adaptive.Update(currentKl: 3, steps: 512);    // error −0.5 clipped to −0.2
        Assert.Equal(0.1 * (1 + 0.2 * 0.0512) * (1 - 0.2 * 0.0512), adaptive.Value, 12);

        var fixedCoefficient = new KlController(0.05);
        fixedCoefficient.Update(100, 512);
        Assert.Equal(0.05, fixedCoefficient.Value);
    }

    [Fact]
    public void Entropy_UniformOverFour_IsLogFour()
    {
        using var scope = NewDisposeScope();
        var logits = zeros(new long[] { 1, 2, 4 }, float64);

        Close([Math.Log(4), Math.Log(4)], PpoMath.Entropy(logits).flatten());
    }
}
