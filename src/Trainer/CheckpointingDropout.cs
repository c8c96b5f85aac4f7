using PrefPipe.Models.Lora;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>Activation checkpointing with LoRA dropout needs the recomputation to draw the forward pass's masks again.</summary>
internal static class CheckpointingDropout
{
    /// <summary>
    /// Refuses gradient checkpointing with LoRA dropout on CUDA: TorchSharp 0.107 exposes the CPU generator's state but
    /// not the CUDA generators', so the recomputed pass would draw other dropout masks and the gradients would be wrong.
    /// </summary>
    /// <exception cref="ArgumentException">That combination, naming the options to change.</exception>
    public static void Check(bool gradientCheckpointing, LoraOptions? lora, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (gradientCheckpointing && lora is { Dropout: > 0 } && device.type != TorchSharp.DeviceType.CPU)
            throw new ArgumentException(
                "gradient_checkpointing with lora.dropout > 0 is not supported on CUDA (the recomputed pass cannot replay the CUDA generator's dropout masks): set lora.dropout to 0 or turn gradient_checkpointing off.");
    }
}
