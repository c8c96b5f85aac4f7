using PrefPipe.Models.Runtime;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>The <c>dtype</c> option: the dtype the policy trains in, and its reference is scored in.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720:Identifier contains type name", Justification = "The members are the option's values as torch and TRL spell them (float32, bfloat16).")]
public enum TrainingDtype
{
    /// <summary>bfloat16 on CUDA, float32 elsewhere.</summary>
    Auto,

    /// <summary>float32.</summary>
    Float32,

    /// <summary>bfloat16.</summary>
    Bfloat16,
}

/// <summary>The dtype option as a tensor dtype: one rule for the trainer and the reference pass.</summary>
internal static class TrainingDtypes
{
    /// <summary>float32 or bfloat16 as named; auto is bfloat16 on CUDA and float32 elsewhere.</summary>
    /// <param name="dtype">The option (<see cref="DpoTrainingOptions.Dtype"/>).</param>
    /// <param name="device">The device the model runs on; null = <see cref="TorchRuntime.DefaultDevice"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined value.</exception>
    public static ScalarType Resolve(TrainingDtype dtype, Device? device = null) => dtype switch
    {
        TrainingDtype.Float32 => ScalarType.Float32,
        TrainingDtype.Bfloat16 => ScalarType.BFloat16,
        TrainingDtype.Auto => (device ?? TorchRuntime.DefaultDevice()).type == TorchSharp.DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "expected auto, float32 or bfloat16"),
    };
}
