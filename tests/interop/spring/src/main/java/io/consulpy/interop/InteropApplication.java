package io.consulpy.interop;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.cloud.client.loadbalancer.LoadBalanced;
import org.springframework.context.annotation.Bean;
import org.springframework.web.client.RestTemplate;

/**
 * A minimal Spring Cloud Consul application for consulpy's interop test: it registers itself, reads
 * {@code greeting} from KV ({@code config/interop-app/greeting}) and calls its peers by service name.
 */
@SpringBootApplication
public class InteropApplication {

    /** A RestTemplate whose host part is a Consul service name, resolved by Spring Cloud LoadBalancer. */
    @Bean
    @LoadBalanced
    RestTemplate loadBalancedRestTemplate() {
        return new RestTemplate();
    }

    public static void main(String[] args) {
        SpringApplication.run(InteropApplication.class, args);
    }
}
