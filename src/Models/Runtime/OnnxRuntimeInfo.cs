using Microsoft.ML.OnnxRuntime;

namespace PrefPipe.Models.Runtime;

/// <summary>What ONNX Runtime offers on this machine.</summary>
/// <param name="Loaded">Whether the native ONNX Runtime loaded.</param>
/// <param name="Version">ONNX Runtime's version string.</param>
/// <param name="Providers">Execution providers compiled into the loaded build, e.g. CPUExecutionProvider, CUDAExecutionProvider.</param>
/// <param name="Error">Why loading failed, or null.</param>
public sealed record OnnxRuntimeInfo(bool Loaded, string? Version, IReadOnlyList<string> Providers, string? Error)
{
    /// <summary>Loads ONNX Runtime and describes it. Never throws.</summary>
    public static OnnxRuntimeInfo Describe()
    {
        try
        {
            var env = OrtEnv.Instance();
            return new OnnxRuntimeInfo(true, env.GetVersionString(), env.GetAvailableProviders(), null);
        }
        catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or OnnxRuntimeException or EntryPointNotFoundException)
        {
            return new OnnxRuntimeInfo(false, null, [], $"ONNX Runtime did not load: {ex.GetBaseException().Message}");
        }
    }
}
