using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json.Serialization;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Host.Diagnostics;

/// <summary>How a doctor check came out.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CheckStatus>))]
internal enum CheckStatus
{
    Ok,
    Info,
    Warn,
    Fail,
}

/// <summary>One line of <c>prefpipe doctor</c>.</summary>
/// <param name="Name">What was checked.</param>
/// <param name="Status">The outcome; <see cref="CheckStatus.Fail"/> makes the command exit non-zero.</param>
/// <param name="Detail">What was found (versions, counts, paths).</param>
/// <param name="Fix">What to do about a failure.</param>
internal sealed record DoctorCheck(string Name, CheckStatus Status, string Detail, string? Fix = null);

[JsonSerializable(typeof(IReadOnlyList<DoctorCheck>))]
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
internal sealed partial class DoctorJson : JsonSerializerContext;

/// <summary>The checks behind <c>prefpipe doctor</c>.</summary>
internal static class DoctorChecks
{
    public const string StorageVariable = "PREFPIPE_STORAGE";

    public static async Task<IReadOnlyList<DoctorCheck>> RunAsync(string storage, bool requireCuda, CancellationToken cancellationToken = default)
    {
        var checks = new List<DoctorCheck>
        {
            new(".NET", CheckStatus.Info, $"{RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture})"),
            new("build", CheckStatus.Info, $"prefpipe {Version()}, TorchBackend={Metadata("TorchBackend")}, OnnxBackend={Metadata("OnnxBackend")}"),
        };
        checks.AddRange(TorchChecks(requireCuda));
        checks.Add(OnnxCheck());
        checks.Add(await StorageCheck.RunAsync(storage, cancellationToken).ConfigureAwait(false));
        return checks;
    }

    private static IEnumerable<DoctorCheck> TorchChecks(bool requireCuda)
    {
        var t = TorchRuntime.Describe();
        if (!t.Loaded)
        {
            yield return new DoctorCheck("libtorch", CheckStatus.Fail, $"TorchSharp {t.TorchSharpVersion}: not loaded", t.Error);
            yield break;
        }
        yield return new DoctorCheck("libtorch", CheckStatus.Ok, $"TorchSharp {t.TorchSharpVersion}, libtorch {t.LibTorchVersion} loaded, {t.Threads} CPU threads");
        if (t.CudaAvailable)
            yield return new DoctorCheck("CUDA", CheckStatus.Ok, $"available, {t.CudaDeviceCount} device(s)");
        else if (requireCuda)
            yield return new DoctorCheck("CUDA", CheckStatus.Fail, "not available",
                "Build with -p:TorchBackend=cuda (TorchSharp-cuda-linux) or -p:TorchBackend=external with PyTorch's torch/lib on LD_LIBRARY_PATH, on a machine with an NVIDIA driver.");
        else
            yield return new DoctorCheck("CUDA", CheckStatus.Info, "not available: training and generation run on CPU");
    }

    private static DoctorCheck OnnxCheck()
    {
        var o = OnnxRuntimeInfo.Describe();
        if (!o.Loaded)
            return new DoctorCheck("ONNX Runtime", CheckStatus.Fail, "not loaded", o.Error);
        string providers = string.Join(", ", o.Providers);
        if (!o.Providers.Contains(OnnxRuntimeInfo.Cpu))
            return new DoctorCheck("ONNX Runtime", CheckStatus.Fail, $"{o.Version}; providers: {providers}", "The CPU execution provider is missing: reinstall Microsoft.ML.OnnxRuntime.");
        // The GPU build lists CUDA whether or not its libraries load; say which one reward scoring will use.
        string cuda = o.CudaError is null ? "" : $"; CUDA unusable, reward scoring runs on CPU: {o.CudaError}";
        return new DoctorCheck("ONNX Runtime", CheckStatus.Ok, $"{o.Version}; providers: {providers}{cuda}");
    }

    private static string Version() =>
        typeof(DoctorChecks).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private static string Metadata(string key) =>
        typeof(DoctorChecks).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value ?? "unknown";
}
