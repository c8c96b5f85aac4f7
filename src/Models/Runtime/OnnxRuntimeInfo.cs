using Microsoft.ML.OnnxRuntime;

namespace PrefPipe.Models.Runtime;

/// <summary>What ONNX Runtime offers on this machine.</summary>
/// <param name="Loaded">Whether the native ONNX Runtime loaded.</param>
/// <param name="Version">ONNX Runtime's version string.</param>
/// <param name="Providers">Execution providers compiled into the loaded build, e.g. CPUExecutionProvider, CUDAExecutionProvider.</param>
/// <param name="Error">Why loading failed, or null.</param>
/// <param name="CudaError">Why the CUDA provider compiled into this build cannot be used here (its libraries, such as
/// cuBLAS and cuDNN, or a device are missing), or null when it can or when the build has none.</param>
public sealed record OnnxRuntimeInfo(bool Loaded, string? Version, IReadOnlyList<string> Providers, string? Error, string? CudaError = null)
{
    /// <summary>The CUDA provider's name.</summary>
    public const string Cuda = "CUDAExecutionProvider";

    /// <summary>The CPU provider's name.</summary>
    public const string Cpu = "CPUExecutionProvider";

    /// <summary>Whether sessions can run on CUDA: the provider is compiled in and loads.</summary>
    public bool CudaUsable => Providers.Contains(Cuda) && CudaError is null;

    /// <summary>Loads ONNX Runtime and describes it, probing whether a compiled-in CUDA provider loads. Never throws.</summary>
    public static OnnxRuntimeInfo Describe()
    {
        try
        {
            var env = OrtEnv.Instance();
            var providers = env.GetAvailableProviders();
            string? cudaError = null;
            if (providers.Contains(Cuda))
            {
                using var probe = new SessionOptions();
                TryAppendCuda(probe, out cudaError);
            }
            return new OnnxRuntimeInfo(true, env.GetVersionString(), providers, null, cudaError);
        }
        catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or OnnxRuntimeException or EntryPointNotFoundException)
        {
            return new OnnxRuntimeInfo(false, null, [], $"ONNX Runtime did not load: {ex.GetBaseException().Message}");
        }
    }

    /// <summary>
    /// Adds the CUDA provider (device 0) to <paramref name="options"/>. The GPU build lists CUDAExecutionProvider
    /// whether or not its libraries load, so only appending it tells; this never throws for that.
    /// </summary>
    /// <param name="options">The session options to add the provider to.</param>
    /// <param name="error">Why it could not be added (the build has no CUDA provider, or ONNX Runtime's own message,
    /// which names the missing library), or null.</param>
    /// <returns>Whether the provider was added.</returns>
    public static bool TryAppendCuda(SessionOptions options, out string? error)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!OrtEnv.Instance().GetAvailableProviders().Contains(Cuda))
        {
            error = "this ONNX Runtime build has no CUDA provider (build with -p:OnnxBackend=gpu)";
            return false;
        }
        try
        {
            options.AppendExecutionProvider_CUDA(0);
            error = null;
            return true;
        }
        catch (OnnxRuntimeException ex)
        {
            error = $"ONNX Runtime's CUDA provider does not load here: {ex.Message.Trim()} (it needs the CUDA runtime, cuBLAS and cuDNN on the loader path, and a device)";
            return false;
        }
    }
}
