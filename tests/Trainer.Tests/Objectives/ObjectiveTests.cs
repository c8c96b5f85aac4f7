using Microsoft.Extensions.Options;
using PrefPipe.Trainer.Objectives;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests.Objectives;

/// <summary>
/// Each objective on two hand-made pairs. Expected numbers were computed by hand from the formulas in
/// docs/objectives.md with Python's math module (float64), independently of this code:
///   pair 0: S_θ(w)=−10, S_θ(l)=−14, S_ref(w)=−11, S_ref(l)=−12, |w|=5, |l|=8, H̄=0.6
///   pair 1: S_θ(w)=−20, S_θ(l)=−15, S_ref(w)=−18, S_ref(l)=−16, |w|=10, |l|=6, H̄=0.3
/// </summary>
public sealed class ObjectiveTests
{
    private static PreferenceBatch Batch(bool requiresGrad = false) => PreferenceBatch.FromValues(
        [-10, -20], [-14, -15], [-11, -18], [-12, -16], [5, 10], [8, 6], [0.6, 0.3], requiresGrad);

    private static double[] Loss(ObjectiveOptions options, PreferenceBatch? batch = null)
    {
        using var scope = NewDisposeScope();
        var objective = ObjectiveFactory.Create(options);
        return objective.Compute(batch ?? Batch()).Loss.data<double>().ToArray();
    }

    private static void Close(double[] expected, double[] actual, int digits = 9)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], digits);
    }

    [Fact]
    public void Sigmoid_Beta01_MatchesHandComputedDpoLoss()
    {
        // h0 = 0.1·((−10+11) − (−14+12)) = 0.3 → softplus(−0.3); h1 = −0.3 → softplus(0.3)
        Close([0.5543552444685271, 0.8543552444685272], Loss(new ObjectiveOptions { LossType = "sigmoid" }));
    }

    [Fact]
    public void Sigmoid_LabelSmoothing01_MatchesConservativeDpo()
    {
        Close([0.5843552444685272, 0.8243552444685273], Loss(new ObjectiveOptions { LossType = "sigmoid", LabelSmoothing = 0.1 }));
    }

    [Fact]
    public void SigmoidNorm_UsesMeanLogProbs()
    {
        Close([0.6709002842054063, 0.7116485600354546], Loss(new ObjectiveOptions { LossType = "sigmoid_norm" }));
    }

    [Fact]
    public void Ipo_Beta01_MatchesSquaredMargin()
    {
        Close([20.702499999999997, 28.80111111111111], Loss(new ObjectiveOptions { LossType = "ipo" }));
    }

    [Fact]
    public void Mipo_DefaultBeta20_MatchesPaperFormulaAndReportsQ()
    {
        using var scope = NewDisposeScope();
        var objective = ObjectiveFactory.Create(new ObjectiveOptions { LossType = "mipo" });
        var output = objective.Compute(Batch());

        Assert.Equal(20, objective.Beta);
        Close([13.063723098498858, 14.351405735068383], output.Loss.data<double>().ToArray());
        Close([0.40318604888545784, 1.2175702574961482], output.Terms["mipo/q"].data<double>().ToArray());
    }

    [Fact]
    public void MallowsTheta_Defaults_MatchesHandComputedAndReportsC()
    {
        using var scope = NewDisposeScope();
        var output = ObjectiveFactory.Create(new ObjectiveOptions { LossType = "mallows_theta" }).Compute(Batch());

        Close([0.6711731301350586, 0.7468908270221343], output.Loss.data<double>().ToArray());
        Close([0.1481394308921373, 0.34915211325452145], output.Terms["mallows/c"].data<double>().ToArray());
    }

    [Fact]
    public void MallowsTheta_LabelSmoothing01_SmoothsTheDispersionScaledLogit()
    {
        // z = β·c·Δ: pair 0 0.1·0.14813943089213730·3 = 0.04444182926764119, pair 1 0.1·0.34915211325452145·(−3);
        // L = 0.9·softplus(−z) + 0.1·softplus(z) (Python math, float64). Unsmoothed: 0.6711731301350586, 0.7468908270221343.
        Close([0.6756173130618227, 0.7364162636244986], Loss(new ObjectiveOptions { LossType = "mallows_theta", LabelSmoothing = 0.1 }));
    }

    [Fact]
    public void MallowsTheta_WithoutDispersionAndSmoothed_EqualsConservativeDpo()
    {
        Close(Loss(new ObjectiveOptions { LossType = "sigmoid", Beta = 0.25, LabelSmoothing = 0.2 }),
              Loss(new ObjectiveOptions { LossType = "mallows_theta", Beta = 0.25, LabelSmoothing = 0.2, MallowsUseDispersion = false }), 12);
    }

    [Theory]
    [InlineData("ipo")]
    [InlineData("mipo")]
    [InlineData("mallows_phi")]
    public void Create_LabelSmoothingWithAnObjectiveThatHasNoSmoothedForm_IsRejectedNotIgnored(string loss)
    {
        var ex = Assert.Throws<OptionsValidationException>(() => ObjectiveFactory.Create(new ObjectiveOptions { LossType = loss, LabelSmoothing = 0.1 }));

        Assert.Contains($"label_smoothing 0.1 has no effect with loss_type '{loss}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MallowsPhi_Defaults_MatchesKendallMallowsLink()
    {
        Close([0.6544283700121079, 0.7905088261579327], Loss(new ObjectiveOptions { LossType = "mallows_phi" }));
    }

    [Fact]
    public void MallowsPhiLink_AtAndNearZeroAndFarOut_BehavesAsDocumented()
    {
        using var scope = NewDisposeScope();
        var phi = tensor(new[] { 0.5, 0.5, 0.5, 0.5 }, float64);
        var g = MallowsPhiObjective.Link(tensor(new[] { 0.0, 1e-9, -1e-9, 50.0 }, float64), phi).data<double>().ToArray();

        Assert.Equal(0.5, g[0], 12);
        Assert.Equal(0.5573049591110366, g[1], 6);   // 1/(1−φ) − 1/(−log φ): the documented jump at 0
        Assert.Equal(1 - 0.5573049591110366, g[2], 6);
        Assert.Equal(1.0, g[3], 9);
    }

    [Fact]
    public void Bcr_Defaults_PenalisesChosenDropBeyondBudget()
    {
        using var scope = NewDisposeScope();
        var output = ObjectiveFactory.Create(new ObjectiveOptions { LossType = "bcr" }).Compute(Batch());

        // pair 1: r_w = −20 − (−18) = −2 → penalty max(0, 2 − 1) = 1
        Close([0.5543552444685271, 1.8543552444685272], output.Loss.data<double>().ToArray());
        Close([0, 1], output.Terms["bcr/penalty"].data<double>().ToArray());
    }

    [Fact]
    public void Bcr_ZeroBudgetLambda2_IsDpopLike()
    {
        Close([0.5543552444685271, 4.854355244468527], Loss(new ObjectiveOptions { LossType = "bcr", BcrBudget = 0, BcrLambda = 2 }));
    }

    [Fact]
    public void RpoAlpha_AddsWeightedNllOfChosen()
    {
        Close([1.5543552444685271, 1.8543552444685272], Loss(new ObjectiveOptions { LossType = "sigmoid", RpoAlpha = 0.5 }));
    }

    [Fact]
    public void Mipo_IdentityModulation_EqualsSigmoidNorm()
    {
        Close(Loss(new ObjectiveOptions { LossType = "sigmoid_norm", Beta = 3 }),
              Loss(new ObjectiveOptions { LossType = "mipo", Beta = 3, MipoModulation = MipoModulation.Identity }), 12);
    }

    [Fact]
    public void MallowsTheta_WithoutDispersion_EqualsDpo()
    {
        Close(Loss(new ObjectiveOptions { LossType = "sigmoid", Beta = 0.25 }),
              Loss(new ObjectiveOptions { LossType = "mallows_theta", Beta = 0.25, MallowsUseDispersion = false }), 12);
    }

    [Fact]
    public void Bcr_LambdaZero_EqualsDpo()
    {
        Close(Loss(new ObjectiveOptions { LossType = "sigmoid" }), Loss(new ObjectiveOptions { LossType = "bcr", BcrLambda = 0 }), 12);
    }

    [Fact]
    public void Sigmoid_Gradient_PushesChosenUpAndRejectedDown()
    {
        using var scope = NewDisposeScope();
        var batch = Batch(requiresGrad: true);
        ObjectiveFactory.Create(new ObjectiveOptions { LossType = "sigmoid" }).Compute(batch).Loss.sum().backward();

        // dL/dS_θ(w) = −β·σ(−h): pair 0 h = 0.3 → −0.1·σ(−0.3) = −0.04255574831883411
        Assert.Equal(-0.04255574831883411, batch.PolicyChosen.grad!.data<double>()[0], 12);
        Assert.Equal(0.04255574831883411, batch.PolicyRejected.grad!.data<double>()[0], 12);
    }

    [Fact]
    public void MallowsPhi_WithoutDispersion_SaysWhatIsMissing()
    {
        using var scope = NewDisposeScope();
        var batch = PreferenceBatch.FromValues([-1], [-2], [-1], [-2], [1], [1]);

        var ex = Assert.Throws<InvalidOperationException>(() => ObjectiveFactory.Create(new ObjectiveOptions { LossType = "mallows_phi" }).Compute(batch));
        Assert.Contains("dispersion", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_UnknownLossTypeOrBadRange_NamesKeyAndExpectation()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => ObjectiveFactory.Create(new ObjectiveOptions { LossType = "dpo++", LabelSmoothing = 0.9 }));

        Assert.Contains("LabelSmoothing", ex.Message, StringComparison.Ordinal);
        var ex2 = Assert.Throws<OptionsValidationException>(() => ObjectiveFactory.Create(new ObjectiveOptions { LossType = "dpo++" }));
        Assert.Contains("loss_type 'dpo++' is not known; expected one of sigmoid, sigmoid_norm", ex2.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Metrics_UseTrlNamesAndValues()
    {
        using var scope = NewDisposeScope();
        var batch = Batch();
        var objective = ObjectiveFactory.Create(new ObjectiveOptions { LossType = "mipo" });
        var metrics = PreferenceMetrics.Compute(batch, objective, objective.Compute(batch));

        // rewards/chosen = β·(S_θ(w) − S_ref(w)) = 20·[1, −2] → mean −10; rejected 20·[−2, 1] → mean −10
        Assert.Equal(-10, metrics["rewards/chosen"], 9);
        Assert.Equal(-10, metrics["rewards/rejected"], 9);
        Assert.Equal(0, metrics["rewards/margins"], 9);
        Assert.Equal(0.5, metrics["rewards/accuracies"], 9);
        Assert.Equal(-15, metrics["logps/chosen"], 9);
        Assert.Equal(-14.5, metrics["logps/rejected"], 9);
        Assert.Equal((0.40318604888545784 + 1.2175702574961482) / 2, metrics["mipo/q"], 9);
    }
}
