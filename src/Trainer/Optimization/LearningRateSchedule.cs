namespace PrefPipe.Trainer.Optimization;

/// <summary>Shape of the learning rate after warmup (HF's <c>lr_scheduler_type</c>).</summary>
public enum ScheduleKind
{
    /// <summary>Half a cosine from the peak to 0 (get_cosine_schedule_with_warmup).</summary>
    Cosine,

    /// <summary>Straight line from the peak to 0 (get_linear_schedule_with_warmup).</summary>
    Linear,

    /// <summary>Flat at the peak after warmup.</summary>
    Constant,
}

/// <summary>Linear warmup then cosine, linear or constant decay; a pure function of the step so resume needs only the step.</summary>
/// <param name="PeakLearningRate">The learning rate after warmup.</param>
/// <param name="WarmupSteps">Steps of linear warmup from 0.</param>
/// <param name="TotalSteps">Total optimizer steps.</param>
/// <param name="Kind">Decay shape.</param>
public sealed record LearningRateSchedule(double PeakLearningRate, long WarmupSteps, long TotalSteps, ScheduleKind Kind)
{
    /// <summary>The learning rate for the optimizer step numbered <paramref name="step"/> (0-based), as HF computes it.</summary>
    public double At(long step)
    {
        if (step < WarmupSteps) return PeakLearningRate * step / Math.Max(1, WarmupSteps);
        if (Kind == ScheduleKind.Constant) return PeakLearningRate;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind == ScheduleKind.Linear
            ? PeakLearningRate * Math.Max(0.0, 1 - progress)
            : PeakLearningRate * Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
