using PrefPipe.Trainer.Objectives;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests.Objectives;

/// <summary>
/// MallowsPO-φ's loss L(s) = −log g_φ(s) and its autograd slope dL/ds against a high-precision evaluation of the
/// definition in docs/objectives.md: mpmath at 600 digits, by mallows_phi_reference.py next to this file (run it with
/// python3 + python3-mpmath to regenerate the InlineData rows; the tests never run Python).
/// </summary>
public sealed class MallowsPhiObjectiveTests
{
    private const double RelativeTolerance = 1e-9;

    [Theory]
    [InlineData(0.5, 0, 6.9314718055994531e-1, -2.2741127776021876e-1)]
    [InlineData(0.5, 1e-9, 5.8464268578350422e-1, -2.0402768177926903e-1)]
    [InlineData(0.5, -1e-9, 8.1487414153118789e-1, -2.5684868453821004e-1)]
    [InlineData(0.5, 0.25, 5.3522798553642195e-1, -1.9133651094469474e-1)]
    [InlineData(0.5, -0.25, 8.8076863198608424e-1, -2.7031132807942878e-1)]
    [InlineData(0.5, 3, 1.766235356793169e-1, -7.8926971513822097e-2)]
    [InlineData(0.5, -3, 1.8207470061013073, -4.0856314665978498e-1)]
    [InlineData(0.5, 30, 1.3504177442404641e-8, -8.8947213023163985e-9)]
    [InlineData(0.5, -30, 1.8120266765942732e+1, -6.586644229309386e-1)]
    [InlineData(0.5, 100, 3.9048614808440084e-29, -2.6672006806631067e-29)]
    [InlineData(0.5, -100, 6.5412745386419886e+1, -6.8304617045893521e-1)]
    [InlineData(0.5, 1000, 4.6616517744235783e-299, -3.2265444661014534e-299)]
    [InlineData(0.5, -1000, 6.869335729618567e+2, -6.9214617955894431e-1)]
    [InlineData(0.9, 0, 6.9314718055994531e-1, -3.5107181591265779e-2)]
    [InlineData(0.9, 1e-9, 6.7574268336748099e-1, -3.4501445306074357e-2)]
    [InlineData(0.9, -1e-9, 7.1085996782860306e-1, -3.573456760478141e-2)]
    [InlineData(0.9, 0.25, 6.6715569178752715e-1, -3.4194589697984842e-2)]
    [InlineData(0.9, -0.25, 7.1983229528140899e-1, -3.6044130649283783e-2)]
    [InlineData(0.9, 3, 5.7771808826490715e-1, -3.0866650543484601e-2)]
    [InlineData(0.9, -3, 8.2366019378061264e-1, -3.9473060878067644e-2)]
    [InlineData(0.9, 30, 1.0359039662320865e-1, -7.5653915354533977e-3)]
    [InlineData(0.9, -30, 2.3186587646679033, -6.9314385672817948e-2)]
    [InlineData(0.9, 100, 2.4175078292600866e-4, -2.2818502581631607e-5)]
    [InlineData(0.9, -100, 8.327724058015356, -9.437712764022441e-2)]
    [InlineData(0.9, 1000, 1.7321404104571477e-44, -1.8075133558580134e-45)]
    [InlineData(0.9, -1000, 1.0076438621649036e+2, -1.0435143392220572e-1)]
    [InlineData(0.99, 0, 6.9314718055994531e-1, -3.3501006714645657e-3)]
    [InlineData(0.99, 1e-9, 6.9147352873782581e-1, -3.3444984587559067e-3)]
    [InlineData(0.99, -1e-9, 6.9482363818908657e-1, -3.3557216836715062e-3)]
    [InlineData(0.99, 0.25, 6.9063775471456113e-1, -3.3416938334216894e-3)]
    [InlineData(0.99, -0.25, 6.9566291946888906e-1, -3.3585286589526432e-3)]
    [InlineData(0.99, 3, 6.8149048621184693e-1, -3.3108749600444576e-3)]
    [InlineData(0.99, -3, 7.049413575999821e-1, -3.3894354182313032e-3)]
    [InlineData(0.99, 30, 5.9614809669212381e-1, -3.0120046936721883e-3)]
    [InlineData(0.99, -30, 8.0057579344820256e-1, -3.6951958794195677e-3)]
    [InlineData(0.99, 100, 4.1125207726768916e-1, -2.2842800810566877e-3)]
    [InlineData(0.99, -100, 1.0871378586427704, -4.4903771369070275e-3)]
    [InlineData(0.99, 1000, 3.8908388688988996e-4, -3.4796215740380604e-6)]
    [InlineData(0.99, -1000, 7.8519101256982474, -8.9413743483455373e-3)]
    public void NegLogLink_AnyMargin_MatchesHighPrecisionValueAndSlope(double phi, double s, double expectedLoss, double expectedSlope)
    {
        using var scope = NewDisposeScope();
        var sTensor = tensor(new[] { s }, float64, requires_grad: true);

        var loss = MallowsPhiObjective.NegLogLink(sTensor, tensor(new[] { phi }, float64));
        loss.sum().backward();

        AssertRelative(expectedLoss, loss.item<double>(), "loss");
        AssertRelative(expectedSlope, sTensor.grad!.item<double>(), "dL/ds");
    }

    [Fact]
    public void Compute_PolicyEqualsReference_GivesLog2AndTheSlopeAtZero()
    {
        // φ = H̄^φ* = 0.5 with φ* = 1 and H̄ = 0.5; s = β·Δ = 0, so L = log 2 and dL/dS_θ(y_w) = β·dL/ds(0) = 0.1·(−0.22741127776021876).
        using var scope = NewDisposeScope();
        var batch = PreferenceBatch.FromValues([-12], [-15], [-12], [-15], [4], [5], [0.5], requiresGrad: true);
        var objective = ObjectiveFactory.Create(new ObjectiveOptions { LossType = "mallows_phi", PhiStar = 1 });

        var loss = objective.Compute(batch).Loss;
        loss.sum().backward();

        Assert.Equal(Math.Log(2), loss.item<double>(), 12);
        AssertRelative(-0.022741127776021876, batch.PolicyChosen.grad!.item<double>(), "dL/dS_θ(y_w)");
        AssertRelative(0.022741127776021876, batch.PolicyRejected.grad!.item<double>(), "dL/dS_θ(y_l)");
    }

    private static void AssertRelative(double expected, double actual, string what) =>
        Assert.True(double.IsFinite(actual) && Math.Abs(actual - expected) <= RelativeTolerance * Math.Abs(expected),
            $"{what}: expected {expected:R}, got {actual:R} (relative error {Math.Abs(actual - expected) / Math.Abs(expected):G3})");
}
