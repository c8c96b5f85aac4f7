using Microsoft.Extensions.Options;

namespace PrefPipe.Trainer;

/// <summary>Checks <see cref="DpoTrainingOptions"/> and its objective: generated from their attributes, with their cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class DpoTrainingOptionsValidator : IValidateOptions<DpoTrainingOptions>;
