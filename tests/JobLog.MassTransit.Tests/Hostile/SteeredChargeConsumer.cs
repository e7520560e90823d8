using System.Runtime.CompilerServices;
using MassTransit;

// An application's namespace, not JobLog's: the failure group's frame is the first frame of the application's code.
namespace Shop.Billing;

/// <summary>A charge whose note the sender chose; the consumer declines it with the note in the exception's message.</summary>
public sealed record SteeredCharge(string Note, bool Wrapped);

public sealed class SteeredChargeConsumer : IConsumer<SteeredCharge>
{
    public Task Consume(ConsumeContext<SteeredCharge> context) => Decline(context.Message);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Task Decline(SteeredCharge charge)
    {
        var declined = new InvalidOperationException("declined: " + charge.Note);
        if (!charge.Wrapped)
        {
            throw declined;
        }

        try
        {
            throw declined;
        }
        catch (InvalidOperationException ex)
        {
            // A wrapper whose own message is the sender's text too, before its inner exception in the text.
            throw new AggregateException("batch failed: " + charge.Note, ex);
        }
    }
}
