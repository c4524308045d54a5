package io.consulpy.interop;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.cloud.context.config.annotation.RefreshScope;
import org.springframework.stereotype.Component;

/** The KV-backed property; rebuilt when the Consul config watch publishes a refresh. */
@Component
@RefreshScope
public class Greeting {

    @Value("${greeting:unset}")
    private String value;

    public String value() {
        return value;
    }
}
