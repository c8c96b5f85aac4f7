using System.Reflection;
using TorchSharp;

namespace PrefPipe.Models.Runtime;

/// <summary>What the loaded libtorch can do on this machine.</summary>
/// <param name="Loaded">Whether the native libtorch and TorchSharp's wrapper loaded.</param>
/// <param name="TorchSharpVersion">The TorchSharp assembly's informational version.</param>
/// <param name="LibTorchVersion">The libtorch version TorchSharp reports (<c>torch.__version__</c>), or null when not loaded.</param>
/// <param name="CudaAvailable">Whether CUDA is available to libtorch.</param>
/// <param name="CudaDeviceCount">The number of CUDA devices libtorch sees.</param>
/// <param name="Threads">libtorch's intra-op thread count.</param>
/// <param name="Error">Why loading failed, with the fix, or null.</param>
public sealed record TorchRuntimeInfo(
    bool Loaded,
    string TorchSharpVersion,
    string? LibTorchVersion,
    bool CudaAvailable,
    int CudaDeviceCount,
    int Threads,
    string? Error);

/// <summary>Loads libtorch once and reports what it can do; the one place that knows how TorchSharp finds its natives.</summary>
public static class TorchRuntime
{
    private static readonly Lazy<TorchRuntimeInfo> Info = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads libtorch (CUDA where available) and describes it. Never throws; see <see cref="TorchRuntimeInfo.Error"/>.</summary>
    public static TorchRuntimeInfo Describe() => Info.Value;

    /// <summary>Loads libtorch or throws with a message that says how to fix the machine.</summary>
    /// <exception cref="InvalidOperationException">libtorch could not be loaded.</exception>
    public static void EnsureLoaded()
    {
        var info = Describe();
        if (!info.Loaded) throw new InvalidOperationException(info.Error);
    }

    /// <summary>The device training and generation should use by default: CUDA:0 when available, else CPU.</summary>
    public static torch.Device DefaultDevice()
    {
        EnsureLoaded();
        return Describe().CudaAvailable ? torch.CUDA : torch.CPU;
    }

    private static TorchRuntimeInfo Probe()
    {
        string tsVersion = typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                           ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";
        int plus = tsVersion.IndexOf('+', StringComparison.Ordinal);
        if (plus > 0) tsVersion = tsVersion[..plus];
        try
        {
            // Try CUDA first: on a CPU-only build or machine this quietly falls back to CPU.
            torch.TryInitializeDeviceType(DeviceType.CUDA);
            bool cuda = torch.cuda.is_available();
            return new TorchRuntimeInfo(true, tsVersion, torch.__version__, cuda, cuda ? torch.cuda.device_count() : 0,
                torch.get_num_threads(), null);
        }
        catch (Exception ex) when (ex is TypeInitializationException or NotSupportedException or DllNotFoundException or InvalidOperationException)
        {
            return new TorchRuntimeInfo(false, tsVersion, null, false, 0, 0, Explain(ex));
        }
    }

    private static string Explain(Exception ex)
    {
        string all = ex.ToString();
        if (all.Contains("GLIBCXX", StringComparison.Ordinal) || all.Contains("LibTorchSharp", StringComparison.Ordinal))
        {
            return "libtorch did not load: TorchSharp's libLibTorchSharp.so could not be loaded. On Debian 12 / Ubuntu 22.04 " +
                   "the build patches the copy in the output folder (build/LibStdCxxCompat.targets); rebuild with the default " +
                   "PatchLibTorchSharp=auto, or with -p:PatchLibTorchSharp=always when this build runs on another machine. " +
                   "For -p:TorchBackend=external put libtorch on LD_LIBRARY_PATH (e.g. PyTorch's torch/lib). " +
                   $"Detail: {ex.GetBaseException().Message.Split('\n')[0]}";
        }
        return $"libtorch did not load: {ex.GetBaseException().Message.Split('\n')[0]}";
    }
}
