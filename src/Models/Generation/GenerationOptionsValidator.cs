using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Generation;

/// <summary>Checks <see cref="GenerationOptions"/>: generated from its attributes.</summary>
[OptionsValidator]
internal sealed partial class GenerationOptionsValidator : IValidateOptions<GenerationOptions>;
