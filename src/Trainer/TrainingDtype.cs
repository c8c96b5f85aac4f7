using PrefPipe.Models.Runtime;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>The <c>dtype</c> option (auto, float32, bfloat16) as a tensor dtype: one rule for the trainer and the reference pass.</summary>
internal static class TrainingDtype
{
    /// <summary>float32 or bfloat16 as named; auto is bfloat16 on CUDA and float32 elsewhere.</summary>
    /// <param name="dtype">auto, float32 or bfloat16 (<see cref="DpoTrainingOptions.Dtype"/>).</param>
    /// <param name="device">The device the model runs on; null = <see cref="TorchRuntime.DefaultDevice"/>.</param>
    /// <exception cref="ArgumentException">Any other name.</exception>
    public static ScalarType Resolve(string dtype, Device? device = null) => dtype switch
    {
        "float32" => ScalarType.Float32,
        "bfloat16" => ScalarType.BFloat16,
        "auto" => (device ?? TorchRuntime.DefaultDevice()).type == TorchSharp.DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
        _ => throw new ArgumentException($"dtype '{dtype}' is not known; expected auto, float32 or bfloat16.", nameof(dtype)),
    };
}
