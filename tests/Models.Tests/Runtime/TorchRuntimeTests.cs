using PrefPipe.Models.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Runtime;

public sealed class TorchRuntimeTests
{
    [Fact]
    public void Describe_OnThisMachine_LoadsLibTorchOnCpu()
    {
        var info = TorchRuntime.Describe();

        Assert.True(info.Loaded, info.Error);
        Assert.Equal("0.107.0", info.TorchSharpVersion);
        Assert.StartsWith("2.10", info.LibTorchVersion, StringComparison.Ordinal);
        Assert.True(info.Threads >= 1);
    }

    [Fact]
    public void Matmul_KnownMatrices_GivesExactProduct()
    {
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        // [2, 3] @ [3, 2] -> [2, 2] float64
        var a = tensor(new double[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        var b = tensor(new double[] { 7, 8, 9, 10, 11, 12 }, new long[] { 3, 2 });
        var c = a.matmul(b);

        Assert.Equal(new long[] { 2, 2 }, c.shape);
        Assert.Equal(new double[] { 58, 64, 139, 154 }, c.data<double>().ToArray());
    }

    [Fact]
    public void Autograd_SoftmaxCrossEntropy_MatchesClosedForm()
    {
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        // logits [1, 3] float32; target class 2. d/dz CE = softmax(z) - onehot.
        var z = tensor(new float[] { 1f, 2f, 3f }, new long[] { 1, 3 }, requires_grad: true);
        var loss = nn.functional.cross_entropy(z, tensor(new long[] { 2 }));
        loss.backward();

        double denom = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        Assert.Equal(-Math.Log(Math.Exp(3) / denom), loss.item<float>(), 5);
        var grad = z.grad!.data<float>().ToArray();
        Assert.Equal(Math.Exp(1) / denom, grad[0], 5);
        Assert.Equal(Math.Exp(3) / denom - 1, grad[2], 5);
    }
}
